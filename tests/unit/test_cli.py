"""`volreg --help` pages: a description, option defaults, the settings read with the values in
effect (never a password), exit codes; `--version`; settings validated before help."""

from __future__ import annotations

import argparse

import pytest

from service.core.settings import Settings
from service.main.cli import parser
from service.main.cli_help import COMMANDS, masked, version
from tests.support import volreg_bare


def test_every_subcommand_documents_itself() -> None:
    top = parser(tools=True, settings=Settings())
    [sub] = [a for a in top._actions if isinstance(a, argparse._SubParsersAction)]
    assert set(sub.choices) == set(COMMANDS)
    for name, p in sub.choices.items():
        text = p.format_help()
        assert COMMANDS[name][0].split()[0] in text, name
        assert "exit codes:" in text and "  0 " in text and "  2 " in text, name
        if COMMANDS[name][1]:
            assert "environment (in effect now" in text, name
        flat = "".join(text.split())  # argparse wraps long defaults mid-word
        for action in p._actions:
            if action.help and action.default not in (None, False, argparse.SUPPRESS):
                assert f"(default:{action.default})".replace(" ", "") in flat, (name, action.dest)


def test_help_shows_values_in_effect_without_secrets() -> None:
    done = volreg_bare(
        "serve",
        "--help",
        VOLREG_HTTP_PORT="9123",
        VOLREG_REDIS_URL="redis://:sekret@127.0.0.1:6379/0",
        VOLREG_MYSQL_DSN="mysql://volreg:hunter2@db:3306/volreg",
        VOLREG_TOKEN_SECRET="a-real-secret",
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "VOLREG_HTTP_PORT=9123" in out
    assert "--workers WORKERS" in out and "(default: 1)" in out
    assert "VOLREG_REDIS_URL=redis://:***@127.0.0.1:6379/0" in out
    for secret in ("sekret", "hunter2", "a-real-secret"):
        assert secret not in out
    assert "1   a worker process failed" in out


def test_help_does_not_bypass_validation() -> None:
    done = volreg_bare("serve", "--help", VOLREG_HTTP_PORT="99999")
    assert done.returncode == 2
    assert "VOLREG_HTTP_PORT=99999: must be between 1 and 65535" in done.stderr
    assert done.stdout == ""


def test_version() -> None:
    done = volreg_bare("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"volreg {version()}"
    assert version() != "unknown"


@pytest.mark.parametrize(
    ("field", "value", "shown"),
    [
        ("mysql_shards", "0-1=mysql://u:p@a/x,2-3=mysql://u:q@b/y", "0-1=mysql://u:***@a/x"),
        ("amqp_url", "amqp://u:p@a:5672/v,amqp://b:5672/v", "amqp://b:5672/v"),
        ("token_secret", Settings().token_secret, "(development secret)"),
        ("http_host", "0.0.0.0", "0.0.0.0"),
        ("redis_cluster_password", "p", "(set)"),
    ],
)
def test_masking(field: str, value: str, shown: str) -> None:
    text = masked(field, value)
    assert shown in text
    assert ":p@" not in text and ":q@" not in text and text != "p"
