"""The Lainaamo fleet server: domain, service layer, adapters and entrypoints.

Dependencies point inwards: entrypoints → service_layer → domain; adapters implement the
interfaces the service layer needs. The domain does no I/O.
"""
