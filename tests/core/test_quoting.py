"""Client input in messages and log lines: cut, escaped, never costly."""

from __future__ import annotations

import time

from hypothesis import given
from hypothesis import strategies as st

from vsmux.core.quoting import QUOTE_LIMIT, cap_message, escape, mention, printable, quote


def test_short_plain_text_is_quoted_as_is() -> None:
    assert quote("commerce") == "'commerce'"
    assert quote("") == "''"


def test_control_characters_quotes_and_backslashes_are_escaped() -> None:
    assert quote("alice\nINFO forged") == "'alice\\nINFO forged'"
    assert quote("a\rb\tc\x1b[31m") == "'a\\rb\\tc\\x1b[31m'"
    assert quote("it's a\\b") == "'it\\'s a\\\\b'"
    assert quote("\u2028\x85") == "'\\u2028\\x85'"  # line breaks outside ASCII too


def test_long_values_are_cut_and_say_how_long_they_were() -> None:
    text = quote("k" * 1_000_000)
    assert text == "'" + "k" * QUOTE_LIMIT + "'... (1000000 characters)"
    assert quote("abcdef", limit=3) == "'abc'... (6 characters)"


def test_the_cut_counts_utf8_bytes_and_never_splits_a_character() -> None:
    text = quote("é" * 300)  # two bytes each
    assert text == "'" + "é" * (QUOTE_LIMIT // 2) + "'... (300 characters)"
    assert quote("aé", limit=2) == "'a'... (2 characters)"


def test_bytes_that_are_not_utf8_show_as_hex() -> None:
    assert quote(b"ab\xff\xfe") == "'ab\\xff\\xfe'"
    assert quote(b"x" * 500, limit=4) == "'xxxx'... (500 bytes)"


def test_cost_depends_on_the_limit_not_the_value() -> None:
    huge = "\n" * 10_000_000
    started = time.perf_counter()
    for _ in range(100):
        quote(huge)
        mention(huge)
        printable(huge, 1024)
    assert time.perf_counter() - started < 1.0


@given(st.text())
def test_a_quoted_value_is_one_printable_line(value: str) -> None:
    text = quote(value)
    assert text.isprintable()
    assert len(text) <= 10 * QUOTE_LIMIT + 40  # \UXXXXXXXX at worst, and the length


def test_mention_leaves_plain_names_bare_and_quotes_the_rest() -> None:
    assert mention("commerce") == "commerce"
    assert mention("-80") == "-80"
    assert mention("MySQL56/3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5") == (
        "MySQL56/3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5"
    )
    assert mention("/c(") == "/c("
    assert mention("two words") == "'two words'"
    assert mention("a\nb") == "'a\\nb'"
    assert mention("x" * 1000).endswith("'... (1000 characters)")


def test_escape_keeps_printable_text() -> None:
    assert escape("plain text") == "plain text"
    assert escape("a\x00b") == "a\\x00b"


def test_printable_escapes_only_what_could_break_a_line() -> None:
    assert printable("no 'change' here\\") == "no 'change' here\\"
    assert printable("one\ntwo") == "one\\ntwo"
    assert printable("x" * 100, limit=10) == "x" * 10 + " ... (cut)"


def test_cap_message_bounds_status_messages() -> None:
    assert cap_message("short") == "short"
    capped = cap_message("é" * 10_000, limit=2048)
    assert len(capped.encode()) <= 2048
    assert capped.endswith(" ... (message cut)")
