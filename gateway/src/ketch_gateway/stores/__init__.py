"""The state store: its contract, and the SQLite and Redis implementations."""
