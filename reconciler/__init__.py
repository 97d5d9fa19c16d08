"""Reconciliation of Redis and MySQL per form, by version: the newer side repairs the other."""
