"""Handlers, the unit of work and read-side views."""
