"""Use cases the entry points call; each owns its unit of work and raises domain errors."""
