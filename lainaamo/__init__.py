"""Lainaamo: fleet server and agent for loan tablets in public social services."""

__version__ = "0.1.0"
