"""Process entry points: the command line, the API server, the consumer, and the wiring
that opens adapters."""
