"""Entrypoints: the HTTP app, the MQTT ingest, the CLI wiring. They only translate."""
