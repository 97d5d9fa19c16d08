"""Forms: the save use case, filing windows, and the consumer that persists saves to MySQL."""
