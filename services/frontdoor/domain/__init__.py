"""The front door's pure rules: lockout, token and session lifetimes, accounts, workspaces."""
