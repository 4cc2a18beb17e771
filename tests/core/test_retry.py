"""Retry classification, give-up rule and backoff (docs/vitess.md sections 6.3-6.4)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vsmux.core.retry import (
    RetryAction,
    RetryDecision,
    ShardRetryPolicy,
    classify,
    ended_unexpectedly,
    mysql_errno,
)
from vsmux.core.settings import GatewaySettings
from vsmux.errors import Code, VStreamError

RETRY = RetryAction.RETRY
OTHER = RetryAction.RETRY_OTHER_TABLET
FAIL = RetryAction.FAIL
ALIAS = "zone1-0000000101"


def sql_error(errno: int, state: str, text: str) -> str:
    """A tablet error as Vitess renders a MySQL error."""
    return f"vttablet: rpc error: code = Unknown desc = {text} (errno {errno}) (sqlstate {state})"


# vtgate's retriable-error table, in our words, plus the cases it leaves implicit.
@pytest.mark.parametrize(
    ("code", "message", "action"),
    [
        pytest.param(Code.FAILED_PRECONDITION, "tablet is not serving", RETRY, id="precondition"),
        pytest.param(Code.UNAVAILABLE, "connection refused", RETRY, id="unavailable"),
        pytest.param(Code.INVALID_ARGUMENT, "final error", FAIL, id="invalid-argument"),
        pytest.param(
            Code.INVALID_ARGUMENT,
            "GTIDSet Mismatch: requested source position 1-10 is not a subset of 1-5",
            OTHER,
            id="gtidset-mismatch",
        ),
        pytest.param(
            Code.UNKNOWN,
            sql_error(1236, "HY000", "Cannot replicate because the source purged binary logs"),
            OTHER,
            id="binlog-purged-1236",
        ),
        pytest.param(
            Code.UNKNOWN,
            sql_error(3024, "HY000", "Query execution was interrupted"),
            RETRY,
            id="ephemeral-sql-error",
        ),
        pytest.param(
            Code.UNKNOWN,
            sql_error(1062, "23000", "Duplicate entry '1' for key 'PRIMARY'"),
            FAIL,
            id="non-ephemeral-sql-error",
        ),
        pytest.param(Code.INTERNAL, "internal error", FAIL, id="internal"),
        # Beyond vtgate's table:
        pytest.param(
            Code.UNAVAILABLE,
            sql_error(1789, "HY000", "source has purged required GTIDs"),
            OTHER,
            id="purged-gtids-1789-beats-unavailable",
        ),
        pytest.param(
            Code.UNKNOWN, "GTIDSet Mismatch: only under INVALID_ARGUMENT", FAIL, id="mismatch-code"
        ),
        pytest.param(Code.UNKNOWN, sql_error(1213, "40001", "Deadlock"), RETRY, id="deadlock"),
        pytest.param(Code.UNKNOWN, sql_error(1205, "HY000", "Lock wait"), RETRY, id="lock-wait"),
        pytest.param(Code.UNKNOWN, sql_error(2013, "HY000", "Lost conn"), RETRY, id="lost-conn"),
        pytest.param(
            Code.UNKNOWN,
            "Error 2006 (HY000): MySQL server has gone away",
            RETRY,
            id="driver-format",
        ),
        pytest.param(Code.INTERNAL, "errno: 2003 can't connect", RETRY, id="errno-colon"),
        pytest.param(Code.PERMISSION_DENIED, "no access", FAIL, id="permission-denied"),
        pytest.param(Code.UNAUTHENTICATED, "who are you", FAIL, id="unauthenticated"),
        pytest.param(Code.CANCELED, "context canceled", FAIL, id="canceled"),
        pytest.param(
            Code.UNKNOWN, "errno 12345 is not a MySQL error we know", FAIL, id="odd-errno"
        ),
    ],
)
def test_classify(code: Code, message: str, action: RetryAction) -> None:
    assert classify(VStreamError(code, message)) is action


@pytest.mark.parametrize(
    ("message", "errno"),
    [
        ("x (errno 1236) (sqlstate HY000)", 1236),
        ("errno 3024", 3024),
        ("errno: 2013, lost", 2013),
        ("Error 1213 (40001): Deadlock found", 1213),
        ("first (errno 1205) then (errno 1062)", 1205),
        ("no number here", None),
        ("Error 1213 without sqlstate", None),
        ("serrno 1236 is another word", None),
    ],
)
def test_mysql_errno(message: str, errno: int | None) -> None:
    assert mysql_errno(message) == errno


def test_ended_unexpectedly_is_retried() -> None:
    err = ended_unexpectedly(ALIAS)
    assert err.message == f"vstream ended unexpectedly on tablet {ALIAS}"
    assert classify(err) is RETRY


# -- the policy -------------------------------------------------------------------------

SETTINGS = GatewaySettings(
    max_consecutive_failures=3, retry_backoff_initial=0.1, retry_backoff_max=5.0
)


def policy(seed: int = 7, settings: GatewaySettings = SETTINGS) -> ShardRetryPolicy:
    return ShardRetryPolicy("customer", "-80", settings, random.Random(seed))


def test_third_consecutive_failure_gives_up_with_original_code() -> None:
    p = policy()
    unavailable = VStreamError(Code.UNAVAILABLE, f"{ALIAS}: connection refused")
    first = p.failure(unavailable, ALIAS)
    second = p.failure(unavailable, ALIAS)
    third = p.failure(
        VStreamError(Code.FAILED_PRECONDITION, f"{ALIAS}: not serving"), "zone1-0000000102"
    )
    assert (first.action, second.action) == (RETRY, RETRY)
    assert first.error is unavailable
    assert (third.action, third.delay) == (FAIL, 0.0)
    assert third.error.code == Code.FAILED_PRECONDITION
    assert third.error.message == (
        "persistent error in vstream for customer/-80 on tablet zone1-0000000102; "
        f"giving up: {ALIAS}: not serving"
    )


def test_any_event_resets_the_count() -> None:
    p = policy()
    err = VStreamError(Code.UNAVAILABLE, "down")
    for _ in range(5):
        assert p.failure(err, ALIAS).action is RETRY
        assert p.failure(err, ALIAS).action is RETRY
        assert p.consecutive_failures == 2
        p.event_received()
        assert p.consecutive_failures == 0
    assert p.failure(err, ALIAS).action is RETRY
    assert p.failure(err, ALIAS).action is RETRY
    assert p.failure(err, ALIAS).action is FAIL


def test_non_retryable_error_fails_at_once_unchanged() -> None:
    p = policy()
    err = VStreamError(Code.PERMISSION_DENIED, "no access to table t")
    decision = p.failure(err, ALIAS)
    assert decision == RetryDecision(FAIL, 0.0, err)
    assert decision.error is err
    assert p.consecutive_failures == 0


def test_other_tablet_failures_are_remembered_and_counted() -> None:
    p = policy()
    mismatch = VStreamError(Code.INVALID_ARGUMENT, "GTIDSet Mismatch")
    assert p.failure(mismatch, "zone1-0000000101").action is OTHER
    assert p.ignored_tablets == frozenset({"zone1-0000000101"})
    assert p.failure(VStreamError(Code.UNAVAILABLE, "x"), "zone1-0000000102").action is RETRY
    assert p.ignored_tablets == frozenset({"zone1-0000000101"})
    last = p.failure(mismatch, "zone1-0000000103")
    assert last.action is FAIL
    assert last.error.code == Code.INVALID_ARGUMENT
    assert p.ignored_tablets == frozenset({"zone1-0000000101", "zone1-0000000103"})
    p.event_received()
    assert p.ignored_tablets == frozenset({"zone1-0000000101", "zone1-0000000103"})


def test_backoff_is_deterministic_for_a_seed() -> None:
    def delays(seed: int) -> list[float]:
        p = policy(seed, GatewaySettings(max_consecutive_failures=10))
        return [p.failure(VStreamError(Code.UNAVAILABLE, "x"), ALIAS).delay for _ in range(9)]

    assert delays(1) == delays(1)
    assert delays(1) != delays(2)


def test_backoff_grows_and_is_bounded() -> None:
    s = GatewaySettings(max_consecutive_failures=12, retry_backoff_initial=0.1, retry_backoff_max=5)
    p = policy(3, s)
    err = VStreamError(Code.UNAVAILABLE, "x")
    # Attempt n waits within [c/2, c] where c = min(5, 0.1 * 2**(n-1)).
    for attempt in range(1, 12):
        ceiling = min(5.0, 0.1 * 2 ** (attempt - 1))
        delay = p.failure(err, ALIAS).delay
        assert ceiling / 2 <= delay <= ceiling, (attempt, delay)


@settings(max_examples=50, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    initial=st.floats(0.001, 10),
    maximum=st.floats(0.001, 60),
    failures=st.integers(1, 2000),
)
def test_backoff_never_exceeds_the_maximum(
    seed: int, initial: float, maximum: float, failures: int
) -> None:
    s = GatewaySettings(
        max_consecutive_failures=failures + 1,
        retry_backoff_initial=initial,
        retry_backoff_max=maximum,
    )
    p = ShardRetryPolicy("ks", "0", s, random.Random(seed))
    for _ in range(min(failures, 80)):
        decision = p.failure(VStreamError(Code.UNAVAILABLE, "x"), ALIAS)
        assert decision.action is RETRY
        assert min(initial, maximum) / 2 <= decision.delay <= maximum


def test_backoff_survives_very_long_retry_runs() -> None:
    s = GatewaySettings(max_consecutive_failures=2000, retry_backoff_max=5.0)
    p = policy(5, s)
    delays = [p.failure(VStreamError(Code.UNAVAILABLE, "x"), ALIAS).delay for _ in range(1500)]
    assert all(2.5 <= d <= 5.0 for d in delays[20:])


@settings(max_examples=150, deadline=None)
@given(code=st.sampled_from(list(Code)), message=st.text(max_size=80))
def test_classification_is_total_and_consistent(code: Code, message: str) -> None:
    action = classify(VStreamError(code, message))
    errno = mysql_errno(message)
    if code in (Code.FAILED_PRECONDITION, Code.UNAVAILABLE):
        assert action is not FAIL
    if action is FAIL:
        assert errno is None or errno not in (1236, 1789, 3024, 2013, 1213, 1205)
