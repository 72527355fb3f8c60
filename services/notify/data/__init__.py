"""Notify's data files (the SLA policy)."""
