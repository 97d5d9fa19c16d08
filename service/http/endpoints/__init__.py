"""The routes of each feature: parse, call a use case, serialize."""
