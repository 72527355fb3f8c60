"""Notify's pure rules: the SLA policy, clock arithmetic, case state, pauses, summaries and texts."""
