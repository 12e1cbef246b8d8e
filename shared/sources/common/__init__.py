"""Base classes and the registry every provider builds on."""
