"""Hotline intake: operators enter calls; each becomes a help request with a case number at once."""
