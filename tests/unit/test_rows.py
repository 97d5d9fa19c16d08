"""The CSV row checker of imports: the fast path accepts good rows in few steps, a row that
fails it is checked again field by field (the slow path) to name the first bad field, and
the two agree; lines are split with or without quotes."""

from __future__ import annotations

from typing import Any

import pytest

from service.core.ids import make_id
from service.imports.columns import COLUMNS, TEACHER_COLUMNS
from service.imports.rows import (
    KIND_CANDIDATES,
    KIND_TEACHERS,
    RowError,
    decode_candidate,
    detect,
    encode_candidate,
    parse_candidate,
    parse_teacher,
    split_line,
)
from service.imports.sources import ImportRefused

HASH = "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"
CID = make_id(320102, "20070102", 7)
AT = {name: i for i, name in enumerate(COLUMNS)}


def row(**over: Any) -> list[str]:
    values = {
        "candidate_id": CID,
        "name": "张三",
        "school_code": "320102007",
        "password_hash": HASH,
        "total_score": "600",
        "rank": "10",
        "chinese": "120",
        "math": "130",
        "english": "110",
        "elective": "240",
        **over,
    }
    return [str(values[c]) for c in COLUMNS]


def test_a_good_row_passes_the_fast_path() -> None:
    key, (cid, name, school, password_hash, exam) = parse_candidate(row(), AT)
    assert key == int(CID[:17])
    assert (cid, name, school, password_hash) == (CID, "张三", "320102007", HASH)
    assert exam == {
        "total_score": 600.0,
        "rank": 10,
        "subjects": {"chinese": 120.0, "math": 130.0, "english": 110.0, "elective": 240.0},
    }


def test_an_encoded_row_decodes_to_itself() -> None:
    _, record = parse_candidate(row(), AT)
    assert decode_candidate(encode_candidate(record)) == record


@pytest.mark.parametrize(
    ("over", "reason"),
    [
        ({"candidate_id": CID[:17] + ("0" if CID[17] != "0" else "1")}, "candidate_id:"),
        ({"candidate_id": "123"}, "candidate_id:"),
        ({"name": ""}, "name: missing"),
        ({"name": "x" * 65}, "name: longer than 64"),
        ({"name": "tab\there"}, "name: holds control characters"),
        ({"school_code": "32O102"}, "school_code: digits only"),
        ({"school_code": "\uff13\uff12\uff10\uff11"}, "school_code: digits only"),  # fullwidth
        ({"password_hash": "plain-text"}, "password_hash: not an argon2id hash"),
        ({"password_hash": HASH + "x" * 160}, "password_hash: longer than 160"),
        ({"total_score": "six hundred"}, "total_score: not a number"),
        ({"total_score": "1000.5"}, "total_score: 1000.5 is outside 0..1000"),
        ({"total_score": "nan"}, "total_score: nan is outside"),
        ({"total_score": "inf"}, "total_score: inf is outside"),
        ({"rank": "0"}, "rank: must be a whole number from 1"),
        ({"rank": "1.5"}, "rank: must be a whole number from 1"),
        ({"rank": ""}, "rank: missing"),
        ({"math": "nan"}, "math: nan is outside 0..300"),
        ({"elective": "301"}, "elective: 301 is outside 0..300"),
        ({"english": "-1"}, "english: -1 is outside 0..300"),
    ],
)
def test_a_bad_row_is_explained_by_the_slow_path(over: dict[str, str], reason: str) -> None:
    with pytest.raises(RowError) as caught:
        parse_candidate(row(**over), AT)
    assert str(caught.value).startswith(reason), caught.value


@pytest.mark.parametrize(
    "over",
    [
        {"name": " 张三 "},  # surrounding blanks are stripped by both paths
        {"total_score": "0"},
        {"total_score": "1000"},
        {"rank": "10000000"},
        {"rank": "1.0"},
        {"elective": "300"},
        {"school_code": "1" * 16},
        {"name": "名" * 64},
    ],
)
def test_the_fast_path_accepts_the_edges_the_slow_path_accepts(over: dict[str, str]) -> None:
    parse_candidate(row(**over), AT)


def test_teacher_rows() -> None:
    at = {name: i for i, name in enumerate(TEACHER_COLUMNS)}
    fields = ["t.li-01", "李老师", "320102007", HASH]
    username, account = parse_teacher(fields, at)
    assert username == "t.li-01"
    assert (account.role, account.school_code, account.name) == ("teacher", "320102007", "李老师")
    with pytest.raises(RowError, match=r"^username: letters"):
        parse_teacher(["li laoshi", *fields[1:]], at)
    with pytest.raises(RowError, match=r"^school_code"):
        parse_teacher([fields[0], fields[1], "x", HASH], at)


def test_detect_tells_the_kinds_by_their_header() -> None:
    kind, at = detect(["\ufeff" + COLUMNS[0], *COLUMNS[1:]])
    assert kind.name == KIND_CANDIDATES and at["candidate_id"] == 0
    kind, at = detect(list(reversed(TEACHER_COLUMNS)))
    assert kind.name == KIND_TEACHERS and at["username"] == len(TEACHER_COLUMNS) - 1
    with pytest.raises(ImportRefused, match="unknown header"):
        detect(["candidate_id", "name"])


@pytest.mark.parametrize(
    ("line", "fields"),
    [
        (b"a,b,c", ["a", "b", "c"]),
        (b"a,b,c\r", ["a", "b", "c"]),
        (b'a,"x,y",c', ["a", "x,y", "c"]),
        (b'"x,y",b', ["x,y", "b"]),
        (b'a,"x,y"', ["a", "x,y"]),
        (b'a,"say ""hi""",c', ["a", 'say "hi"', "c"]),
        ("名,b".encode(), ["名", "b"]),
    ],
)
def test_split_line(line: bytes, fields: list[str]) -> None:
    assert split_line(line) == fields


@pytest.mark.parametrize(
    ("line", "message"),
    [(b"a,\xff,b", "not valid UTF-8"), (b'a,"unterminated', "bad CSV quoting")],
)
def test_split_line_refuses(line: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        split_line(line)
