"""Hot items: access events off the save path, aggregated into time buckets, hot keys pushed
into every API process's local cache."""
