"""Envelope encryption of credentials under KMS-wrapped keys (the data-sources issue)."""
