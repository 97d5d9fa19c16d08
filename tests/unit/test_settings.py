"""Settings are validated beyond their types, with one clear line per problem and exit code 2
from the command line (pure logic: no server)."""

from __future__ import annotations

import dataclasses

import pytest

from service.core.settings import Settings
from service.core.settings_rules import BOUNDS, SettingsError
from service.storage.mysql_migrate import as_owner
from tests.support import volreg_bare


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"VOLREG_SHARDS": "0"}, "VOLREG_SHARDS=0: must be between 1 and 100000"),
        ({"VOLREG_QUEUES": "1000"}, "VOLREG_QUEUES=1000: must be between 1 and VOLREG_SHARDS"),
        ({"VOLREG_QUEUES": "0"}, "VOLREG_QUEUES=0: must be at least 1"),
        ({"VOLREG_HTTP_PORT": "99999"}, "VOLREG_HTTP_PORT=99999: must be between 1 and 65535"),
        ({"VOLREG_HTTP_PORT": "0"}, "VOLREG_HTTP_PORT=0: must be between 1 and 65535"),
        ({"VOLREG_REDIS_TIMEOUT_S": "0"}, "VOLREG_REDIS_TIMEOUT_S=0.0: must be greater than 0"),
        ({"VOLREG_MYSQL_TIMEOUT_S": "-1"}, "VOLREG_MYSQL_TIMEOUT_S=-1.0: must be greater than 0"),
        ({"VOLREG_REDIS_URL": "htp://x"}, "VOLREG_REDIS_URL='htp://x': the scheme must be"),
        ({"VOLREG_AMQP_URL": "amqp://a:5672/,http://b"}, "VOLREG_AMQP_URL"),
        ({"VOLREG_MYSQL_DSN": "postgres://h/db"}, "the scheme must be mysql://"),
        ({"VOLREG_MYSQL_SHARDS": "0-255=redis://h/x"}, "VOLREG_MYSQL_SHARDS"),
        ({"VOLREG_LOG_LEVEL": "LOUD"}, "must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
        ({"VOLREG_SHRADS": "64"}, "VOLREG_SHRADS: no such setting (did you mean VOLREG_SHARDS?)"),
        ({"VOLREG_REDIS_CLUSTER_NODES": "a:1,b"}, "expected host:port"),
        ({"VOLREG_KEY_PREFIX": "a{b}"}, "VOLREG_KEY_PREFIX"),
        ({"VOLREG_SHARDS": "many"}, "VOLREG_SHARDS='many': expected an integer"),
        ({"VOLREG_ACCESS_LOG_SAMPLE": "2"}, "must be between 0 and 1"),
        ({"VOLREG_BROKER": "kafka"}, "VOLREG_BROKER='kafka': must be one of rabbitmq, rocketmq"),
        (
            {"VOLREG_ROCKETMQ_INVISIBLE_S": "5"},
            "VOLREG_ROCKETMQ_INVISIBLE_S=5: must be at least 10",
        ),
        (
            {"VOLREG_BROKER": "rocketmq", "VOLREG_ROCKETMQ_ENDPOINTS": "proxy"},
            "VOLREG_ROCKETMQ_ENDPOINTS='proxy': expected host:port",
        ),
    ],
)
def test_bad_values_are_refused_naming_the_variable_and_the_range(
    env: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(env)
    assert message in str(caught.value)


def test_good_values_pass_and_every_problem_is_listed_at_once() -> None:
    good = {
        "VOLREG_REDIS_URL": "rediss://:pw@cache:6380/1",
        "VOLREG_AMQP_URL": "amqps://u:p@a:5671/v,amqp://u:p@b:5672/v",
        "VOLREG_MYSQL_DSN": "mysql://u:p@db:3306/volreg",
        "VOLREG_SHARDS": "16",
        "VOLREG_QUEUES": "16",
        "VOLREG_LOG_LEVEL": "debug",
        "VOLREG_CONSUMER_HTTP_PORT": "0",  # 0 turns the consumer's endpoint off
        "VOLREG_ENV_FILE": "x",
        "VOLREG_TEST_MYSQL": "not a setting, a test switch",
    }
    assert Settings.from_env(good).queues == 16
    assert Settings.from_env({"VOLREG_REDIS_URL": "unix:///run/redis.sock"})
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"VOLREG_SHARDS": "0", "VOLREG_HTTP_PORT": "70000", "VOLREG_X": "1"})
    assert len(caught.value.problems) == 3


def test_direct_construction_is_validated_too() -> None:
    with pytest.raises(SettingsError, match="VOLREG_QUEUES"):
        Settings(shards=4, queues=5)
    with pytest.raises(SettingsError, match="VOLREG_BROKER_TIMEOUT_S"):
        dataclasses.replace(Settings(), broker_timeout_s=0.0)


def test_every_numeric_setting_has_a_bound_and_every_bound_a_setting() -> None:
    numeric = {
        f.name
        for f in dataclasses.fields(Settings)
        if type(getattr(Settings(), f.name)) in (int, float)
    }
    assert numeric - set(BOUNDS) == set(), "give these settings a range in settings_rules"
    assert set(BOUNDS) - numeric == set(), "bounds of settings that do not exist"


@pytest.mark.parametrize(
    "env",
    [{"VOLREG_LOG_LEVEL": "LOUD"}, {"VOLREG_SHRADS": "64"}, {"VOLREG_REDIS_URL": "htp://x"}],
)
def test_the_command_line_says_what_is_wrong_and_exits_2(env: dict[str, str]) -> None:
    done = volreg_bare("migrate", **env)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    [name] = env
    assert done.stderr.startswith(f"volreg: {name}")


def test_migrations_connect_as_the_schema_owner_when_one_is_set() -> None:
    app = Settings(mysql_dsn="mysql://volreg:app@db:3306/volreg")
    assert as_owner(app, app.mysql_dsn).mysql_dsn == app.mysql_dsn
    owner = dataclasses.replace(
        app, mysql_migrate_user="volreg-migrate", mysql_migrate_password="p@ss:/"
    )
    dsn = as_owner(owner, "mysql://volreg:app@db-b:3307/volreg_b").mysql_dsn
    assert dsn == "mysql://volreg-migrate:p%40ss%3A%2F@db-b:3307/volreg_b"
