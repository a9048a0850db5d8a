"""The API's request and answer models, one module per area (see api/spec.py)."""
