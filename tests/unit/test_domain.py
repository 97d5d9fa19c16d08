"""Pure logic: resident IDs and shards, the gzip codec, tokens, settings, the message format."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from schemas import messages
from schemas.records import STATUS_SAVED, FormRecord
from service.core import codec
from service.core.ids import check_digit, id_problem, make_id, shard_of
from service.core.settings import Settings, environment
from service.core.tokens import BadToken, Claims, TokenSigner


@pytest.mark.parametrize(
    "candidate_id", ["11010519491231002X", "440524188001010014", make_id(330106, "20070315", 7)]
)
def test_valid_ids(candidate_id: str) -> None:
    assert id_problem(candidate_id) is None


@pytest.mark.parametrize(
    ("candidate_id", "reason"),
    [
        ("110105194912310021", "check digit"),
        ("11010519491231002x", "17 digits"),  # lower-case x is not the check character
        ("01010519491231002X", "17 digits"),  # region codes never start with 0
        ("1101051949123100", "17 digits"),
        ("".join(chr(0xFF10 + int(c)) for c in "11010519491231002") + "X", "17 digits"),
        ("11010519491231002X ", "17 digits"),
    ],
)
def test_invalid_ids(candidate_id: str, reason: str) -> None:
    problem = id_problem(candidate_id)
    assert problem is not None and reason in problem


def test_check_digit_matches_gb11643_example() -> None:
    assert check_digit("11010519491231002") == "X"


def test_shards_are_stable_in_range_and_spread() -> None:
    ids = [make_id(110105, "20070101", n) for n in range(1000)]
    shards = [shard_of(i, 256) for i in ids]
    assert all(0 <= s < 256 for s in shards)
    assert shard_of(ids[0], 256) == shards[0]
    assert len(set(shards)) == 256


def test_codec_round_trip_is_deterministic() -> None:
    value = [{"institution": "10001", "majors": ["080901"], "accept_adjustment": True}]
    assert codec.pack(value) == codec.pack(value)  # mtime=0: same bytes, same fingerprint
    assert codec.unpack(codec.pack(value)) == value


def test_codec_refuses_a_bomb() -> None:
    bomb = gzip.compress(b"[" + b" " * (8 * 1024 * 1024) + b"]")
    with pytest.raises(ValueError):
        codec.unpack(bomb)


def test_codec_refuses_garbage() -> None:
    with pytest.raises(ValueError):
        codec.unpack(b"not gzip at all")
    # The gzip magic followed by garbage: the consumer dead-letters on ValueError, and a
    # zlib.error escaping it used to stop the consumer for good.
    with pytest.raises(ValueError):
        codec.unpack(b"\x1f\x8b garbage")


@pytest.mark.parametrize("size", [0, 1, 63, 64, 65, 1000])
def test_split_and_join(size: int) -> None:
    blob = bytes(range(256)) * 4
    blob = blob[:size]
    parts = codec.split(blob, 64)
    assert codec.join(parts) == blob
    assert all(len(p) <= 64 for p in parts) and len(parts) >= 1


def test_tokens_verify_and_reject_forgery_and_expiry() -> None:
    signer = TokenSigner("secret")
    token = signer.issue(Claims("11010519491231002X", "candidate", 2_000))
    assert signer.verify(token, now=1_000) == Claims("11010519491231002X", "candidate", 2_000)
    with pytest.raises(BadToken, match="expired"):
        signer.verify(token, now=2_000)
    with pytest.raises(BadToken):
        TokenSigner("other").verify(token, now=1_000)
    body, _, sig = token.partition(".")
    forged = signer.issue(Claims("440524188001010014", "candidate", 2_000)).partition(".")[0]
    with pytest.raises(BadToken):
        signer.verify(f"{forged}.{sig}", now=1_000)
    for garbage in ("", ".", "abc", "a.b.c", body):
        with pytest.raises(BadToken):
            signer.verify(garbage, now=1_000)


def test_settings_from_env_types_and_errors() -> None:
    s = Settings.from_env(
        {"VOLREG_HTTP_PORT": "9000", "VOLREG_REDIS_TIMEOUT_S": "0.5", "VOLREG_KEY_PREFIX": "x"}
    )
    assert (s.http_port, s.redis_timeout_s, s.key_prefix) == (9000, 0.5, "x")
    assert Settings.from_env({}) == Settings()
    with pytest.raises(ValueError, match="VOLREG_SHARDS"):
        Settings.from_env({"VOLREG_SHARDS": "many"})


@pytest.mark.parametrize(
    ("raw", "value"), [("1", True), ("true", True), ("0", False), ("off", False)]
)
def test_settings_from_env_reads_booleans_as_words(raw: str, value: bool) -> None:
    # bool("0") would be True: a benchmark-only route must not switch on by accident.
    assert Settings.from_env({"VOLREG_BENCH_NAIVE": raw}).bench_naive is value
    with pytest.raises(ValueError, match="VOLREG_REDIS_MULTIPLEX"):
        Settings.from_env({"VOLREG_REDIS_MULTIPLEX": "maybe"})


def test_message_round_trip_and_rejections() -> None:
    record = FormRecord("11010519491231002X", "undergrad-1", 5, 4, STATUS_SAVED, codec.pack([1]))
    headers, body = messages.encode(record, shard=3)
    assert messages.decode(headers, body) == record
    bad_cases = [
        ({**headers, "x-schema": 2}, body),
        ({**headers, "version": -1}, body),
        ({**headers, "version": True}, body),
        ({k: v for k, v in headers.items() if k != "batch"}, body),
        (headers, b"{}"),
    ]
    for bad_headers, bad_body in bad_cases:
        with pytest.raises(messages.MessageFormatError):
            messages.decode(bad_headers, bad_body)


def test_env_file_is_read_under_the_environment(tmp_path: Path) -> None:
    env_file = tmp_path / "volreg.env"
    env_file.write_text(
        "# written by make up\n"
        "VOLREG_REDIS_URL=redis://:secret@127.0.0.1:6379/0\n"
        "VOLREG_SHARDS=64\n"
        "\n"
    )
    merged = environment({"VOLREG_ENV_FILE": str(env_file), "VOLREG_SHARDS": "128"})
    settings = Settings.from_env(merged)
    assert settings.redis_url == "redis://:secret@127.0.0.1:6379/0"
    assert settings.shards == 128  # the environment wins over the file
    missing = {"VOLREG_ENV_FILE": str(tmp_path / "absent.env")}
    assert Settings.from_env(environment(missing)) == Settings()
