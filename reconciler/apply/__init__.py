"""Executing plans: lock, journal, install, verify, record."""
