"""The chaos checker's logic on in-memory stores (the harness runs it on real ones): which
stored copies an acknowledged save allows."""

from __future__ import annotations

from loadtest.chaos_load import Ack, Ledger, choices_for, form_keys
from loadtest.chaos_verify import before_repair, check, content_errors, lost_in
from schemas.records import STATUS_SAVED, FormRecord
from service.core import codec

KEYS = form_keys(3)


def _ledger(attempts: list[tuple[int, int, int | None]]) -> Ledger:
    """(form, salt, acknowledged version or None), in the order the client sent them."""
    ledger = Ledger()
    for form, salt, version in attempts:
        ledger.attempt(form, salt)
        if version is not None:
            ledger.acked.append(Ack(form, version, salt))
    return ledger


def _copy(form: int, version: int, salt: int) -> FormRecord:
    key = KEYS[form]
    payload = codec.pack(choices_for(form, salt))
    return FormRecord(key.candidate_id, key.batch, version, version, STATUS_SAVED, payload)


# Form 0: attempt 1 failed (never acknowledged), attempt 2 acknowledged as v5, attempt 3 failed.
LEDGER = _ledger([(0, 1, None), (0, 2, 5), (0, 3, None)])


def _verdict(version: int, salt: int) -> tuple[int, int]:
    copies = {KEYS[0]: _copy(0, version, salt)}
    return len(lost_in(LEDGER, KEYS, copies)), len(content_errors(LEDGER, KEYS, copies))


def test_the_acknowledged_save_itself_is_clean() -> None:
    assert _verdict(5, 2) == (0, 0)


def test_a_later_unacknowledged_attempt_with_a_newer_version_may_stand() -> None:
    assert _verdict(9, 3) == (0, 0)


def test_an_older_attempt_under_a_version_at_or_above_the_acknowledged_one_is_caught() -> None:
    # Version >= acknowledged alone would call both of these fine.
    assert _verdict(5, 1) == (0, 1)
    assert _verdict(9, 1) == (0, 1)


def test_another_attempt_under_the_acknowledged_version_is_caught() -> None:
    assert _verdict(5, 3) == (0, 1)


def test_the_acknowledged_content_under_another_version_is_caught() -> None:
    assert _verdict(6, 2) == (0, 1)


def test_content_no_client_sent_is_caught() -> None:
    assert _verdict(9, 77) == (0, 1)


def test_an_older_version_or_no_copy_is_a_loss() -> None:
    assert _verdict(4, 1) == (1, 0)
    assert len(lost_in(LEDGER, KEYS, {})) == 1


def test_every_acknowledged_save_behind_the_store_counts_once() -> None:
    ledger = _ledger([(1, 10, 3), (1, 11, 7), (2, 12, 4)])
    copies = {KEYS[1]: _copy(1, 3, 10), KEYS[2]: _copy(2, 4, 12)}
    assert sorted(lost_in(ledger, KEYS, copies)) == [1]  # (form 1, v7)


def test_before_repair_looks_at_mysql_only_and_after_repair_at_both() -> None:
    mysql = {KEYS[0]: _copy(0, 5, 2)}
    assert before_repair(LEDGER, KEYS, mysql).clean
    after = check(LEDGER, KEYS, mysql, {})
    assert len(after.lost) == 1 and after.mismatched == frozenset({0})
    assert check(LEDGER, KEYS, mysql, dict(mysql)).clean


def test_versions_that_do_not_increase_are_order_errors() -> None:
    ledger = _ledger([(0, 1, 5), (0, 2, 5)])
    mysql = {KEYS[0]: _copy(0, 5, 2)}
    assert check(ledger, KEYS, mysql, dict(mysql)).order_errors == 1
