"""Adapters shared by the features: MySQL (pool, shards, migrations), Redis (client, Lua
scripts) and RabbitMQ (connection, publish with confirms, consume). With the features' own
``mysql`` and ``broadcast`` modules, the only modules that import drivers (redis, aio_pika,
asyncmy); they translate driver errors."""
