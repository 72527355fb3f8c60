"""The four services: hotline, router, relief, notify. Each has the same shape (see README)."""
