"""Pure rules of the security hardening: secrets, client addresses behind proxies, argon2
parameter bounds, version bounds, the check of a stored form and the global login rate."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import make_mocked_request
from argon2 import PasswordHasher

from schemas.records import STATUS_SAVED, FormRecord
from service.accounts.fakes import InMemoryLoginAttempts
from service.accounts.guard import LoginGuard, LoginLimits
from service.core import codec
from service.core.errors import LoginBusy
from service.core.passwords import hash_problem
from service.core.settings import Settings
from service.core.token_keys import WeakSecret, check_token_secrets, secret_problem
from service.core.tokens import BadToken, Claims, TokenSigner
from service.core.versions import VERSION_LIMIT, form_problem, version_problem
from service.http.clients import client_address, trusted_networks
from tests.support import choices

NOW = 1_800_000_000_000_000
DAY = 86_400_000_000


@pytest.mark.parametrize(
    "secret",
    [Settings().token_secret, "x" * 31, "REPLACE-ME-with-64-random-bytes", "ab" * 40],
)
def test_weak_secrets_are_named(secret: str) -> None:
    assert secret_problem("VOLREG_TOKEN_SECRET", secret)
    with pytest.raises(WeakSecret, match="VOLREG_TOKEN_SECRET"):
        check_token_secrets(Settings(token_secret=secret))
    check_token_secrets(Settings(token_secret=secret, dev_mode=True))  # a warning only


def test_a_random_secret_passes() -> None:
    assert secret_problem("VOLREG_TOKEN_SECRET", "9f3c1e7a5b2d4f608e1a3c5b7d9f0e2a") is None


def test_rotated_keys_verify_and_dropped_keys_do_not() -> None:
    old, new = (
        "o" * 8 + "0123456789abcdefghijklmnopqrstuv",
        "n" * 8 + "0123456789abcdefghijklmnopqrstuv",
    )
    token = TokenSigner(old).issue(Claims("11010519491231002X", "candidate", 2_000, "", 3))
    assert TokenSigner(new, [old]).verify(token, 1_000).generation == 3
    with pytest.raises(BadToken):
        TokenSigner(new).verify(token, 1_000)


def _request(peer: str, forwarded: str | None = None) -> object:
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    request = make_mocked_request("GET", "/", headers=headers)
    request._transport_peername = (peer, 1234)
    return request


@pytest.mark.parametrize(
    ("proxies", "peer", "forwarded", "client"),
    [
        ("", "203.0.113.9", "198.51.100.1", "203.0.113.9"),  # no trusted proxy: ignored
        ("10.0.0.0/8", "203.0.113.9", "198.51.100.1", "203.0.113.9"),  # peer not trusted
        ("10.0.0.0/8", "10.1.2.3", "198.51.100.1", "198.51.100.1"),
        ("10.0.0.0/8", "10.1.2.3", "6.6.6.6, 198.51.100.1, 10.9.9.9", "198.51.100.1"),
        ("10.0.0.0/8", "10.1.2.3", None, "10.1.2.3"),
        ("10.0.0.0/8", "10.1.2.3", "not-an-ip", "10.1.2.3"),
    ],
)
def test_client_address(proxies: str, peer: str, forwarded: str | None, client: str) -> None:
    request = _request(peer, forwarded)
    assert client_address(request, trusted_networks(proxies)) == client  # type: ignore[arg-type]


def test_trusted_proxies_must_parse() -> None:
    with pytest.raises(ValueError, match="VOLREG_TRUSTED_PROXIES"):
        trusted_networks("10.0.0.0/33")


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ({"time_cost": 1, "memory_cost": 1024, "parallelism": 1}, None),
        ({"time_cost": 1, "memory_cost": 70_000, "parallelism": 1}, "memory cost"),
        ({"time_cost": 11, "memory_cost": 1024, "parallelism": 1}, "time cost"),
        ({"time_cost": 1, "memory_cost": 1024, "parallelism": 5}, "parallelism"),
    ],
)
def test_argon2_parameters_are_bounded(params: dict[str, int], problem: str | None) -> None:
    hasher = PasswordHasher(
        time_cost=params["time_cost"],
        memory_cost=params["memory_cost"],
        parallelism=params["parallelism"],
    )
    found = hash_problem(hasher.hash("x"))
    assert (found is None) if problem is None else (problem in (found or ""))


def test_other_hashes_are_refused() -> None:
    assert hash_problem(
        "$argon2i$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$0aXk3+z0p4R5ZJZ4sT9G4j1p3y2C4X5e1n8FmN6s7hU"
    )
    assert hash_problem("plain-text")


@pytest.mark.parametrize(
    ("version", "ok"),
    [
        (NOW, True),
        (NOW + DAY // 2, True),
        (NOW + 2 * DAY, False),
        (VERSION_LIMIT, False),
        (0, False),
    ],
)
def test_version_bounds(version: int, ok: bool) -> None:
    assert (version_problem(version, NOW, DAY) is None) is ok


def test_a_stored_form_must_be_one_a_save_could_produce() -> None:
    good = FormRecord("11010519491231002X", "b", NOW, NOW, STATUS_SAVED, codec.pack(choices(2)))
    assert form_problem(good, NOW, DAY) is None
    for bad in (
        FormRecord(good.candidate_id, "b", NOW, NOW, "admin", good.payload),
        FormRecord(good.candidate_id, "b", NOW, NOW, STATUS_SAVED, b"\x1f\x8bnope"),
        FormRecord(good.candidate_id, "b", NOW, NOW, STATUS_SAVED, codec.pack([{"x": 1}])),
    ):
        assert form_problem(bad, NOW, DAY)


async def test_the_global_login_rate_refuses_with_busy_and_gives_the_client_attempt_back() -> None:
    counters = InMemoryLoginAttempts()
    guard = LoginGuard(counters, LoginLimits(10, 100, 60, global_limit=3, global_window_s=60))
    for i in range(3):
        assert await guard.reserve(f"10.0.0.{i}", "acct")
    with pytest.raises(LoginBusy) as busy:
        await guard.reserve("10.0.0.9", "acct")
    assert busy.value.retry_after_s is not None and busy.value.retry_after_s >= 1
    # The refused client's own counters hold nothing: the service refused it, not its guesses.
    assert await counters.reserve_login("10.0.0.9", "acct", 1, 1, 60) == 0


async def test_logins_go_through_when_redis_is_down() -> None:
    counters = InMemoryLoginAttempts(down=True)
    guard = LoginGuard(counters, LoginLimits(1, 1, 60, global_limit=1, global_window_s=60))
    assert [await guard.reserve("10.0.0.1", "acct") for _ in range(3)] == [False] * 3
