"""Bulk import of candidates or teachers from CSV: sources, rows, sorted runs, the pipeline
and its job table."""
