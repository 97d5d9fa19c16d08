"""The shared kernel: settings, names, errors, logs, metrics, pure domain logic (ids, codec,
tokens, passwords), the per-process cache and the ports adapters implement. No I/O, no drivers."""
