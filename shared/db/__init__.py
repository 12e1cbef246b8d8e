"""Database access: engine, sessions, models and migrations."""
