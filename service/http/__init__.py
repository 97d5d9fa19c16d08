"""The aiohttp API: handlers parse, call a use case, serialize."""
