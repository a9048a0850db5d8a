"""Helpers that give the tests real outside services: free ports, Mosquitto, PostgreSQL."""
