"""Vidora: open, self-hosted text-to-video."""

__version__ = "0.1.0"
