"""The catalogue: institutions, majors and admission batches behind a multi-level cache, its
MySQL tables and its invalidation broadcast."""
