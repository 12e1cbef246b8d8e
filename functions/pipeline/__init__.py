"""Event functions of the daily pipeline (Pub/Sub pushes and Cloud Tasks)."""
