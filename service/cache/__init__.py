"""In-process caches."""
