"""Applies the numbered SQL files in ``schemas/sql`` once each, recording them in the database."""

from __future__ import annotations

import logging

import asyncmy

from schemas.sql_files import migrations
from service.core.settings import Settings
from service.storage.mysql_db import MySQLTarget, pool_kwargs
from service.storage.mysql_shards import database_dsns, for_dsn

log = logging.getLogger(__name__)


async def migrate(settings: Settings) -> list[str]:
    """Create each database (every one of the shard map) if needed and apply pending
    migrations; returns what it applied."""
    applied: list[str] = []
    for dsn in database_dsns(settings):
        applied += await _migrate_one(for_dsn(settings, dsn))
    return applied


async def _migrate_one(settings: Settings) -> list[str]:
    target = MySQLTarget.parse(settings.mysql_dsn)
    conn = await asyncmy.connect(**pool_kwargs(settings, database=False))
    applied: list[str] = []
    # "already exists" notes of the IF NOT EXISTS statements are expected; asyncmy logs them.
    driver_log = logging.getLogger("asyncmy")
    level = driver_log.level
    driver_log.setLevel(logging.ERROR)
    try:
        async with conn.cursor() as cur:
            await cur.execute(
                f"CREATE DATABASE IF NOT EXISTS `{target.database}` CHARACTER SET utf8mb4"
            )
            await cur.execute(f"USE `{target.database}`")
            await cur.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version INT PRIMARY KEY, name VARCHAR(128) NOT NULL,"
                " applied_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6))"
            )
            await cur.execute("SELECT version FROM schema_migrations")
            done = {row[0] for row in await cur.fetchall()}
            for number, name, statements in migrations():
                if number in done:
                    continue
                for statement in statements:
                    await cur.execute(statement)
                await cur.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (number, name)
                )
                log.info("applied migration %s", name)
                applied.append(name)
    finally:
        driver_log.setLevel(level)
        conn.close()
    return applied


async def drop_database(settings: Settings) -> None:
    """Tests only: remove a per-run database (each one of a shard map)."""
    for dsn in database_dsns(settings):
        one = for_dsn(settings, dsn)
        conn = await asyncmy.connect(**pool_kwargs(one, database=False))
        try:
            async with conn.cursor() as cur:
                database = MySQLTarget.parse(dsn).database
                await cur.execute(f"DROP DATABASE IF EXISTS `{database}`")
        finally:
            conn.close()
