"""The only modules that import drivers (redis, aio_pika, asyncmy); they translate driver errors."""
