"""Least privilege on the development stack's MariaDB (scripts/mariadb-users.sh, which
scripts/ensure-deps.sh runs on its own server): the application's user reads and writes rows
only; migrations and the suites' throw-away databases run as a separate schema owner whose
credentials are generated into the env file. Tried on a private mariadbd on a spare port set
up as an older install left it (the application's user with ALL on `volreg%`, the schema and
its triggers created by that user): the upgrade, a second run that changes nothing, and what
each user may do afterwards."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncmy
import pytest
from asyncmy.errors import OperationalError, ProgrammingError

from loadtest.cluster_local import MariaServer
from service.core.settings import Settings, environment
from service.storage.mysql_migrate import drop_database, migrate
from service.storage.mysql_shards import database_dsns
from tests.support import ROOT

APP, PASSWORD = "volreg", "app-password-of-an-old-install"
# The grants scripts/ensure-deps.sh gave before the upgrade.
_OLD_INSTALL = "".join(
    f"CREATE USER '{APP}'@'{host}' IDENTIFIED BY '{PASSWORD}';"
    f"GRANT ALL PRIVILEGES ON `volreg%`.* TO '{APP}'@'{host}';"
    for host in ("127.0.0.1", "localhost")
)
_DENIED = (OperationalError, ProgrammingError)  # 1142, 1044, 1045: refused by the server


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[MariaServer]:
    maria = MariaServer(tmp_path, buffer_pool_mb=32)
    await maria.prepare()
    await maria.start()
    try:
        await maria.as_root(_OLD_INSTALL)
        yield maria
    finally:
        await maria.stop()


def _users(env_file: Path, server: MariaServer) -> str:
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "mariadb-users.sh"), str(env_file), str(server.port),
         str(server.socket)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def _settings(env_file: Path) -> Settings:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOLREG_")}
    return Settings.from_env(environment({**env, "VOLREG_ENV_FILE": str(env_file)}))


def _volreg_migrate(env_file: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOLREG_")}
    done = subprocess.run(
        [sys.executable, "-m", "service.main.cli", "migrate"],
        env={**env, "VOLREG_ENV_FILE": str(env_file), "VOLREG_DEV_MODE": "1"},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


async def _as(port: int, user: str, password: str, *statements: str) -> None:
    conn = await asyncmy.connect(
        host="127.0.0.1", port=port, user=user, password=password, db="volreg", autocommit=True
    )
    try:
        async with conn.cursor() as cur:
            for statement in statements:
                await cur.execute(statement)
    finally:
        conn.close()


async def test_an_old_install_is_upgraded_to_least_privilege(
    server: MariaServer, tmp_path: Path
) -> None:
    env_file = tmp_path / "volreg.env"
    env_file.write_text(
        f"VOLREG_MYSQL_DSN=mysql://{APP}:{PASSWORD}@127.0.0.1:{server.port}/volreg\n"
    )
    _volreg_migrate(env_file)  # as the application's user, as an older install did
    port = server.port

    out = _users(env_file, server)
    assert f"{APP}@127.0.0.1 now holds SELECT, INSERT, UPDATE, DELETE" in out, out
    settings = _settings(env_file)
    owner, owner_password = settings.mysql_migrate_user, settings.mysql_migrate_password
    assert owner and owner != APP and len(owner_password) >= 32  # generated into the env file

    # The schema's triggers were defined by the application's user, which lost TRIGGER:
    # a row change fails until `volreg migrate` re-creates them as the owner.
    insert = (
        "INSERT INTO candidates (candidate_id, name, school_code, password_hash, shard)"
        " VALUES ('110105200701010011', 'P', '110105001', 'x', 1)"
    )
    with pytest.raises(_DENIED, match="TRIGGER"):
        await _as(port, APP, PASSWORD, insert)
    _volreg_migrate(env_file)
    await _as(
        port,
        APP,
        PASSWORD,
        insert,
        "UPDATE candidates SET name = 'Q' WHERE candidate_id = '110105200701010011'",
        "SELECT n FROM school_counts WHERE school_code = '110105001'",
        "DELETE FROM candidates WHERE candidate_id = '110105200701010011'",
    )
    for ddl in (
        "CREATE TABLE probe (a INT)",
        "DROP TABLE candidates",
        "ALTER TABLE candidates ADD COLUMN probe INT",
        f"GRANT SELECT ON volreg.* TO '{APP}'@'localhost'",
        "CREATE DATABASE volreg_probe",
        "CREATE TRIGGER probe AFTER INSERT ON forms FOR EACH ROW SET @x = 1",
    ):
        with pytest.raises(_DENIED):
            await _as(port, APP, PASSWORD, ddl)

    # Idempotent: a second run changes no grant.
    grants = await server.as_root(f"SHOW GRANTS FOR '{APP}'@'127.0.0.1'")
    assert "now holds" not in _users(env_file, server)
    assert await server.as_root(f"SHOW GRANTS FOR '{APP}'@'127.0.0.1'") == grants
    assert "ALL PRIVILEGES" not in grants and "GRANT OPTION" not in grants

    # The owner creates, migrates and drops a throw-away database (as the suites do).
    scratch = Settings(
        mysql_dsn=f"mysql://{APP}:{PASSWORD}@127.0.0.1:{port}/volreg_test_scratch",
        mysql_migrate_user=owner,
        mysql_migrate_password=owner_password,
    )
    assert await migrate(scratch)
    await drop_database(scratch)
    with pytest.raises(_DENIED):  # the application's user alone may not
        await migrate(Settings(mysql_dsn=database_dsns(scratch)[0]))


async def test_a_fresh_server_gets_both_users(server: MariaServer, tmp_path: Path) -> None:
    env_file = tmp_path / "volreg.env"
    env_file.write_text(
        f"VOLREG_MYSQL_DSN=mysql://fresh:pw-of-fresh@127.0.0.1:{server.port}/volreg\n"
    )
    _users(env_file, server)
    _volreg_migrate(env_file)
    settings = _settings(env_file)
    await _as(server.port, "fresh", "pw-of-fresh", "SELECT COUNT(*) FROM candidates")
    with pytest.raises(_DENIED):
        await _as(server.port, "fresh", "pw-of-fresh", "CREATE TABLE probe (a INT)")
    await _as(
        server.port,
        settings.mysql_migrate_user,
        settings.mysql_migrate_password,
        "CREATE TABLE probe (a INT)",
        "DROP TABLE probe",
    )
