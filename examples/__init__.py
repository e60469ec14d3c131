"""Example environments brought by a user (docs/extending.md)."""
