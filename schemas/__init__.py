"""Wire contracts: HTTP bodies, the MQ message format, SQL migrations and queries, OpenAPI."""
