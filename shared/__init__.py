"""Coinfrs: the library every Cloud Function deploys with."""

__version__ = "0.1.0"
