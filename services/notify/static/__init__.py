"""The coordinator page."""
