"""Use cases: what the API does, written against the interfaces in ``service.ports``."""
