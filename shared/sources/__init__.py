"""Providers, data-source-first: common/ base classes and registry, one folder per provider."""
