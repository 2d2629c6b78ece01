"""Reliability and security: hostile manifests and corrupt state files."""
