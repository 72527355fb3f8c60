"""Shared contracts: event schemas, topic names, department and district codes."""
