"""Fault tests: real processes (ingest, agents, scheduler), a real Mosquitto and PostgreSQL,
and faults done to them (kill -9, SIGSTOP, a database crash). Each is bounded in time."""

from __future__ import annotations

# The `fault` marker is registered in pyproject.toml with the others.
