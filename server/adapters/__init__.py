"""Adapters: the database, metrics, MQTT and clocks behind small interfaces."""
