"""Deterministic stand-ins for Binance, Fireblocks and Google's OIDC endpoints."""
