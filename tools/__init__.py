"""Developer tools run from the repository (`make policy-table`)."""
