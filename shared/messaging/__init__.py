"""Typed messages and the Pub/Sub and Cloud Tasks adapters (with local twins) that carry them."""
