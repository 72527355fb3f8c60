"""Data files of the router: the dispatch catalogue."""
