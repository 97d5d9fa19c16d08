"""Applies the numbered SQL files in ``schemas/sql`` once each, recording them in the database.

Runs as the schema's owner (``mysql_migrate_user``) when one is set: the application's user
needs only row privileges. Triggers run with their definer's privileges, so a trigger an
older install created as the application's user is re-created by the owner (``CREATE OR
REPLACE``: atomic, no row change goes unseen) once that user lost its TRIGGER privilege."""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any, Protocol
from urllib.parse import quote, urlsplit, urlunsplit

import asyncmy
from asyncmy.errors import Error as DriverError

from schemas.records import FormRecord
from schemas.sql_files import migrations, query
from service.core.errors import DatabaseUnavailable
from service.core.settings import Settings
from service.core.settings_rules import SettingsError
from service.storage.mysql_db import MySQLTarget, pool_kwargs
from service.storage.mysql_shards import database_dsns, for_dsn

_SHARDS = "shards"
_TRIGGER = re.compile(r"CREATE TRIGGER IF NOT EXISTS (\w+)", re.IGNORECASE)

log = logging.getLogger(__name__)


async def migrate(settings: Settings, *, reshard: bool = False) -> list[str]:
    """Create each database (every one of the shard map) if needed, apply pending migrations
    and record the shard count; returns what it applied. A database recorded with another
    shard count is refused (SettingsError) unless ``reshard``."""
    applied: list[str] = []
    for dsn in database_dsns(settings):
        applied += await _migrate_one(as_owner(settings, dsn), settings.shards, reshard)
    return applied


def as_owner(settings: Settings, dsn: str) -> Settings:
    """``settings`` pointed at one database with the schema owner's credentials (unchanged
    when no ``mysql_migrate_user`` is set)."""
    if settings.mysql_migrate_user:
        url = urlsplit(dsn)
        credentials = f"{quote(settings.mysql_migrate_user, safe='')}:" + quote(
            settings.mysql_migrate_password, safe=""
        )
        netloc = f"{credentials}@{url.netloc.rpartition('@')[2]}"
        dsn = urlunsplit(url._replace(netloc=netloc))
    return for_dsn(settings, dsn)


async def check_shard_count(settings: Settings) -> None:
    """Refuse (SettingsError) settings whose shard count differs from the one ``migrate``
    recorded in each database: a changed VOLREG_SHARDS would silently map every candidate
    to another Redis slot, queue and MySQL shard. DatabaseUnavailable when MySQL does not
    answer."""
    for dsn in database_dsns(settings):
        database = MySQLTarget.parse(dsn).database
        try:
            async with asyncio.timeout(settings.mysql_timeout_s):
                conn = await asyncmy.connect(**pool_kwargs(for_dsn(settings, dsn)))
        except (OSError, TimeoutError, DriverError) as exc:
            raise DatabaseUnavailable(f"MySQL: {exc}") from exc
        try:
            async with asyncio.timeout(settings.mysql_timeout_s), conn.cursor() as cur:
                await cur.execute("SELECT value FROM volreg_settings WHERE name = %s", (_SHARDS,))
                row = await cur.fetchone()
        except DriverError as exc:
            row = None
            if exc.args and exc.args[0] != 1146:  # 1146: no such table (not migrated yet)
                raise DatabaseUnavailable(f"MySQL: {exc}") from exc
        except (OSError, TimeoutError) as exc:
            raise DatabaseUnavailable(f"MySQL: {exc}") from exc
        finally:
            conn.close()
        if row is None:
            raise SettingsError(
                [f"database {database!r} has no recorded shard count: run `volreg migrate`"]
            )
        if int(row[0]) != settings.shards:
            raise SettingsError([_mismatch(settings.shards, database, int(row[0]))])


def _mismatch(shards: int, database: str, recorded: int) -> str:
    return (
        f"VOLREG_SHARDS={shards}: database {database!r} was migrated with {recorded} shards; "
        "changing it maps candidates to other Redis slots, queues and MySQL shards "
        "(re-shard deliberately: drain the queues, then `volreg migrate --reshard`, warm-up)"
    )


async def _migrate_one(settings: Settings, shards: int, reshard: bool) -> list[str]:
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
            triggers: dict[str, str] = {}
            for number, name, statements in migrations():
                triggers.update(
                    (m.group(1), sql) for sql in statements if (m := _TRIGGER.search(sql))
                )
                if number in done:
                    continue
                for statement in statements:
                    await cur.execute(statement)
                await cur.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (number, name)
                )
                log.info("applied migration %s", name)
                applied.append(name)
            await _own_triggers(cur, triggers)
            await cur.execute("SELECT value FROM volreg_settings WHERE name = %s", (_SHARDS,))
            row = await cur.fetchone()
            if row is not None and int(row[0]) != shards and not reshard:
                raise SettingsError([_mismatch(shards, target.database, int(row[0]))])
            await cur.execute(
                "INSERT INTO volreg_settings (name, value) VALUES (%s, %s)"
                " ON DUPLICATE KEY UPDATE value = VALUES(value)",
                (_SHARDS, str(shards)),
            )
    finally:
        driver_log.setLevel(level)
        conn.close()
    return applied


async def _own_triggers(cur: Any, triggers: dict[str, str]) -> None:
    """Re-create, as the current user, the migrations' triggers another user defined."""
    await cur.execute(
        "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS"
        " WHERE TRIGGER_SCHEMA = DATABASE() AND DEFINER <> CURRENT_USER()"
    )
    for (name,) in await cur.fetchall():
        if name in triggers:
            await cur.execute(_TRIGGER.sub(f"CREATE OR REPLACE TRIGGER {name}", triggers[name]))
            log.info("trigger %s now defined by the schema's owner", name)


async def drop_database(settings: Settings) -> None:
    """Tests only: remove a per-run database (each one of a shard map), as the owner."""
    for dsn in database_dsns(settings):
        database = MySQLTarget.parse(dsn).database
        await _execute_as_owner(settings, dsn, f"DROP DATABASE IF EXISTS `{database}`", use=False)


class NaiveTable:
    """Benchmark only (`volreg serve --naive`): the naive route's store. Its table is created
    when the route starts, so a normal schema never carries it, and by the schema's owner (the
    application's user may not create tables); saves go through the application's pool."""

    def __init__(self, db: NaiveRows, settings: Settings) -> None:
        self._db = db
        self._settings = settings

    async def create_naive_table(self) -> None:
        for dsn in database_dsns(self._settings):
            try:
                await _execute_as_owner(self._settings, dsn, query("naive_create_table"))
            except (OSError, TimeoutError, DriverError) as exc:
                raise DatabaseUnavailable(f"MySQL: {exc}") from exc

    async def naive_save_form(self, record: FormRecord) -> int:
        return await self._db.naive_save_form(record)


class NaiveRows(Protocol):
    async def naive_save_form(self, record: FormRecord) -> int: ...


async def _execute_as_owner(settings: Settings, dsn: str, statement: str, use: bool = True) -> None:
    conn = await asyncmy.connect(**pool_kwargs(as_owner(settings, dsn), database=use))
    try:
        async with conn.cursor() as cur:
            await cur.execute(statement)
    finally:
        conn.close()
