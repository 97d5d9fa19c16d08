"""Pure domain logic: no I/O, no drivers."""
