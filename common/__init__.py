"""Plumbing every service shares: settings base, logging, broker and store factories, consumer policy,
authentication, health and the app factory. Services stay thin by using these, never copying them."""
