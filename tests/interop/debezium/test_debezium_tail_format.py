"""``vsmux tail --format debezium`` prints what Debezium's Vitess connector prints.

Two checks against the real connector (the installation from ``debezium_setup``):

- end to end: the connector and ``vsmux tail --format debezium`` (the command, in a
  child process) read the same shard of the same gateway, a copy and then live
  transactions over every column type of the simulated schema (bigint, varchar,
  datetime, varbinary, decimal; NULLs and empty values included); their records must
  be equal field by field, key order included, except the fields in :data:`EXCLUDED`
  (and :data:`EXCLUDED_IN_COPY` for copied rows); once with the connector's defaults,
  once with ``provide.transaction.metadata=true`` against ``--transaction-metadata``;
- per value: the connector's own converters (``java/ConverterValues.java``: the
  connector's type resolution and ``VitessValueConverter`` with its defaults, rendered
  by Kafka Connect's ``JsonConverter``) and tail's renderer agree on every MySQL type
  VStream carries, including those the simulated schema does not have.

Skipped, with the reason, when ``java`` is not installed (see ``conftest.py``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.interop.debezium.committed_rows import committed_changes, log_marks
from tests.interop.debezium.debezium_harness import (
    KEYSPACE,
    RECORDS_TIMEOUT,
    assert_no_errors,
    connector,
    gateway,
    write,
)
from tests.interop.debezium.debezium_runner import ConnectorRecord, DebeziumConnector
from tests.interop.debezium.debezium_setup import Installation
from vsmux.client.debezium import column_converter
from vsmux.proto import query

pytestmark = pytest.mark.clients

SHARD = "-80"
HERE = Path(__file__).resolve().parent

# Fields that legitimately differ between the connector's record and tail's line.
EXCLUDED: dict[tuple[str, ...], str] = {
    ("ts_ms",): "when the record was made: each process's own clock",
    ("ts_us",): "when the record was made: each process's own clock",
    ("ts_ns",): "when the record was made: each process's own clock",
    ("source", "version"): "the connector writes Debezium's version, tail vsmux's",
}
# Excluded for rows of the copy phase only: a copy's COMMIT events carry the time the
# copy ran, and each reader ran its own copy (the same rows, a few seconds apart).
EXCLUDED_IN_COPY: dict[tuple[str, ...], str] = {
    ("source", "ts_ms"): "the time the reader's own copy ran",
    ("source", "ts_us"): "the time the reader's own copy ran",
    ("source", "ts_ns"): "the time the reader's own copy ran",
}


# -- end to end ----------------------------------------------------------------------


@asynccontextmanager
async def tail_process(port: int, out: Path, err: Path, *extra: str) -> AsyncIterator[trio.Process]:
    """``vsmux tail --format debezium`` copying and streaming SHARD; killed on exit."""
    command = [
        sys.executable,
        "-m",
        "vsmux",
        "tail",
        "--server",
        f"127.0.0.1:{port}",
        "--keyspace",
        KEYSPACE,
        f"--shard={SHARD}",
        "--from",
        "copy",
        "--format",
        "debezium",
        "--quiet",
        "--max-seconds",
        "300",
        *extra,
    ]
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = await trio.lowlevel.open_process(command, stdout=stdout, stderr=stderr)
        try:
            yield process
        finally:
            process.kill()
            with trio.CancelScope(shield=True):
                await process.wait()


def tail_lines(out: Path) -> list[dict[str, Any]]:
    """The complete lines tail wrote so far, parsed."""
    text = out.read_text(encoding="utf-8")
    return [json.loads(line) for line in text.split("\n")[:-1] if line.strip()]


def last_words(err: Path) -> str:
    """The end of tail's stderr."""
    return err.read_text(encoding="utf-8", errors="replace")[-2000:]


def row_records(running: DebeziumConnector) -> list[dict[str, Any]]:
    """The connector's change-record values in order (tombstones after deletes left out)."""
    return [r.value for r in running.records() if _is_row(r)]


def _is_row(record: ConnectorRecord) -> bool:
    return isinstance(record.value, dict) and record.value.get("op") in ("c", "u", "d")


async def until_both(
    count: int,
    running: DebeziumConnector,
    tail: trio.Process,
    out: Path,
    err: Path,
    what: str,
) -> None:
    """Wait until the connector and tail each have at least ``count`` row records."""
    deadline = trio.current_time() + RECORDS_TIMEOUT
    while True:
        have = (len(row_records(running)), len(tail_lines(out)))
        if min(have) >= count:
            return
        problem = running.failure()
        if tail.returncode is not None:
            problem = f"tail exited with {tail.returncode}: {last_words(err)}"
        if problem is not None or trio.current_time() > deadline:
            raise AssertionError(
                f"{what}: connector has {have[0]}, tail {have[1]} of {count} row records "
                f"({problem or 'timeout'})\n{running.describe()}"
            )
        await trio.sleep(0.1)


def without_excluded(value: dict[str, Any], copied: bool) -> dict[str, Any]:
    out = dict(value)
    out["source"] = dict(value["source"])
    for path in [*EXCLUDED, *(EXCLUDED_IN_COPY if copied else ())]:
        holder = out
        for part in path[:-1]:
            holder = holder[part]
        holder.pop(path[-1])
    return out


def differences(ours: Any, theirs: Any, path: str = "") -> list[str]:
    """Where two JSON values differ: values, JSON types (1 vs 1.0 vs "1"), key order."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        found = []
        if list(ours) != list(theirs):
            found.append(f"{path or '.'}: keys {list(ours)} != {list(theirs)}")
        for key in ours.keys() & theirs.keys():
            found += differences(ours[key], theirs[key], f"{path}.{key}")
        return found
    if type(ours) is not type(theirs) or ours != theirs:
        return [f"{path}: tail {ours!r} != connector {theirs!r}"]
    return []


@pytest.mark.parametrize(
    ("properties", "options"),
    [
        pytest.param({}, (), id="defaults"),
        pytest.param(
            {"provide.transaction.metadata": "true"},
            ("--transaction-metadata",),
            id="transaction-metadata",
        ),
    ],
)
async def test_tail_prints_what_the_connector_prints(
    debezium: Installation, tmp_path: Path, properties: dict[str, str], options: tuple[str, ...]
) -> None:
    async with gateway() as stack:
        stack.cluster.apply_random_transactions(60, KEYSPACE)
        log = stack.cluster.shard_log(KEYSPACE, SHARD)
        copied = sum(len(rows) for rows in log.tables.values())
        marks = log_marks(stack.cluster, KEYSPACE)
        out, err = tmp_path / "tail.jsonl", tmp_path / "tail.err"
        properties = {"snapshot.mode": "initial", "vitess.shard": SHARD, **properties}
        async with (
            connector(debezium, stack, tmp_path / "connector", properties) as running,
            tail_process(stack.port, out, err, *options) as tail,
        ):
            # Both copy the same rows before anything else is written.
            await until_both(copied, running, tail, out, err, "the copy")
            await write(stack, 60)
            expected = committed_changes(stack.cluster, KEYSPACE, marks, shards=[SHARD])
            total = copied + len(expected)
            await until_both(total, running, tail, out, err, "the live changes")
            await trio.sleep(0.5)  # anything beyond the expected would show up now
            theirs, ours = row_records(running), tail_lines(out)
            assert_no_errors(running)
    assert len(theirs) == len(ours) == total

    problems = []
    for index, (mine, connectors) in enumerate(zip(ours, theirs, strict=True)):
        copy = index < copied
        for problem in differences(
            without_excluded(mine, copy), without_excluded(connectors, copy)
        ):
            where = f"{connectors['op']} {connectors['source']['table']}"
            problems.append(f"record {index} ({where}){problem}")
    assert not problems, "\n".join(problems[:20])

    # The records covered what they should: every op, and every column type of the
    # simulated schema with a value (and NULL where the column allows it).
    assert {r["op"] for r in theirs} == {"c", "u", "d"}
    if options:
        assert all(r["transaction"] is not None for r in theirs)
        assert any(r["transaction"]["total_order"] > 1 for r in theirs)
    seen: dict[tuple[str, str], set[type]] = {}
    for record in theirs:
        for image in (record["before"], record["after"]):
            for column, value in (image or {}).items():
                seen.setdefault((record["source"]["table"], column), set()).add(type(value))
    schemas = log.schemas
    types_with_values = {
        schemas[table].columns[schemas[table].column_names.index(column)].type
        for (table, column), kinds in seen.items()
        if kinds - {type(None)}
    }
    assert types_with_values == {c.type for s in schemas.values() for c in s.columns}
    assert any(type(None) in kinds for kinds in seen.values())


# -- per value ------------------------------------------------------------------------

NN = 1  # query.Field.flags NOT_NULL

# (type, column_type, decimals, column_length, flags, enum/set values are strings, raw)
CASES: list[tuple[str, str, int, int, int, bool, bytes | None]] = [
    ("INT8", "tinyint", 0, 4, 0, False, b"-12"),
    ("UINT8", "tinyint unsigned", 0, 3, 0, False, b"255"),
    ("INT16", "smallint", 0, 6, 0, False, b"-300"),
    ("UINT16", "smallint unsigned", 0, 5, 0, False, b"65535"),
    ("INT24", "mediumint", 0, 9, 0, False, b"-8388608"),
    ("UINT24", "mediumint unsigned", 0, 8, 0, False, b"16777215"),
    ("INT32", "int", 0, 11, 0, False, b"-2147483648"),
    ("UINT32", "int unsigned", 0, 10, 0, False, b"4294967295"),
    ("INT64", "bigint", 0, 20, 0, False, b"-9223372036854775808"),
    ("UINT64", "bigint unsigned", 0, 20, 0, False, b"18446744073709551615"),
    ("YEAR", "year", 0, 4, 0, False, b"2024"),
    ("FLOAT32", "float", 0, 12, 0, False, b"1.1"),
    ("FLOAT32", "float", 0, 12, 0, False, b"3.4028235e38"),
    ("FLOAT32", "float", 0, 12, 0, False, b"-0.000123"),
    ("FLOAT64", "double", 0, 22, 0, False, b"1.1"),
    ("FLOAT64", "double", 0, 22, 0, False, b"1e300"),
    ("FLOAT64", "double", 0, 22, 0, False, b"12345678901234567"),
    ("DECIMAL", "decimal(10,2)", 2, 12, 0, False, b"12.50"),
    ("DECIMAL", "decimal(10,2)", 2, 12, NN, False, b"-0.01"),
    ("VARCHAR", "varchar(8)", 0, 32, 0, False, "é\u2028x".encode()),
    ("VARCHAR", "varchar(8)", 0, 32, 0, False, b"bad\xff\xfe"),
    ("CHAR", "char(2)", 0, 8, 0, False, b"ab"),
    ("TEXT", "text", 0, 65535, 0, False, b"t\n\x01"),
    ("JSON", "json", 0, 0, 0, False, b'{"a": [1, 2.50, "x"]}'),
    ("VARBINARY", "varbinary(64)", 0, 64, 0, False, b"\x00\xff\x10"),
    ("VARBINARY", "varchar(10)", 0, 40, 0, False, b"xy"),
    ("BINARY", "binary(4)", 0, 4, 0, False, b"\x01\x00\x00\x00"),
    ("BINARY", "char(4)", 0, 4, 0, False, b"ab"),
    ("BINARY", "enum('x','y')", 0, 1, 0, False, b"2"),
    ("BINARY", "set('x','y')", 0, 1, 0, False, b"3"),
    ("BLOB", "blob", 0, 65535, 0, False, b"\x02\x03"),
    ("BLOB", "mediumtext", 0, 65535, 0, False, b"zz"),
    ("BLOB", "tinytext", 0, 255, 0, False, b"tt"),
    ("BIT", "bit(1)", 0, 1, 0, False, b"\x01"),
    ("BIT", "bit(1)", 0, 1, 0, False, b"\x00"),
    ("BIT", "bit(16)", 0, 16, 0, False, b"\x01\x02"),
    ("BIT", "bit(12)", 0, 12, 0, False, b"\x0f\xff"),
    ("ENUM", "enum('s','m','l''x')", 0, 1, 0, True, b"l'x"),
    ("ENUM", "enum('s','m')", 0, 1, 0, False, b"2"),
    ("ENUM", "enum('s','m')", 0, 1, 0, False, b"9"),
    ("ENUM", "enum('s','m')", 0, 1, 0, False, b"0"),
    ("SET", "set('a','b','c')", 0, 5, 0, True, b"a,c"),
    ("SET", "set('a','b','c')", 0, 5, 0, False, b"5"),
    ("SET", "set('a','b','c')", 0, 5, 0, False, b"0"),
    ("SET", "set('a','b')", 0, 5, 0, False, b"13"),
    ("DATE", "date", 0, 10, 0, False, b"2024-01-31"),
    ("DATE", "date", 0, 10, 0, False, b"1969-12-31"),
    ("DATE", "date", 0, 10, 0, False, b"0001-01-01"),
    ("DATE", "date", 0, 10, 0, False, b"1582-10-10"),
    ("DATE", "date", 0, 10, 0, False, b"9999-12-31"),
    ("DATE", "date", 0, 10, 0, False, b"0000-00-00"),
    ("DATE", "date", 0, 10, NN, False, b"0000-00-00"),
    ("DATE", "date", 0, 10, 0, False, b"2024-00-10"),
    ("TIME", "time", 0, 10, 0, False, b"12:34:56"),
    ("TIME", "time(1)", 1, 12, 0, False, b"12:34:56.5"),
    ("TIME", "time(6)", 6, 17, 0, False, b"-12:34:56.000001"),
    ("TIME", "time", 0, 10, 0, False, b"-838:59:59"),
    ("TIME", "time", 0, 10, 0, False, b"838:59:59"),
    ("TIME", "time", 0, 10, 0, False, b"-00:30:00"),
    ("TIME", "time", 0, 10, 0, False, b"00:00:00"),
    ("DATETIME", "datetime", 0, 19, 0, False, b"2024-01-31 12:00:00"),
    ("DATETIME", "datetime(3)", 3, 23, 0, False, b"2024-01-31 12:00:00.123"),
    ("DATETIME", "datetime(6)", 6, 26, 0, False, b"2024-01-31 12:00:00.123456"),
    ("DATETIME", "datetime(2)", 2, 22, 0, False, b"2024-01-31 12:00:00.12"),
    ("DATETIME", "datetime", 0, 19, 0, False, b"1969-12-31 23:59:59"),
    ("DATETIME", "datetime", 0, 19, 0, False, b"1000-01-01 00:00:00"),
    ("DATETIME", "datetime", 0, 19, 0, False, b"9999-12-31 23:59:59"),
    ("DATETIME", "datetime(6)", 6, 26, 0, False, b"1969-12-31 23:59:59.500000"),
    ("DATETIME", "datetime", 0, 19, 0, False, b"0000-00-00 00:00:00"),
    ("DATETIME", "datetime", 0, 19, NN, False, b"0000-00-00 00:00:00"),
    ("TIMESTAMP", "timestamp", 0, 19, 0, False, b"2024-01-31 12:00:00"),
    ("TIMESTAMP", "timestamp(3)", 3, 23, 0, False, b"2024-01-31 12:00:00.500"),
    ("TIMESTAMP", "timestamp(6)", 6, 26, 0, False, b"2024-01-31 12:00:00.000001"),
    ("TIMESTAMP", "timestamp(2)", 2, 22, 0, False, b"2024-01-31 12:00:00.10"),
    ("TIMESTAMP", "timestamp", 0, 19, 0, False, b"1970-01-01 00:00:01"),
    ("TIMESTAMP", "timestamp", 0, 19, 0, False, b"0000-00-00 00:00:00"),
    ("TIMESTAMP", "timestamp", 0, 19, NN, False, b"0000-00-00 00:00:00"),
    ("GEOMETRY", "geometry", 0, 0, 0, False, b"\x00\x01"),
    ("VECTOR", "vector(2)", 0, 0, 0, False, b"\x00"),
    ("INT64", "bigint", 0, 20, 0, False, None),
    ("INT64", "bigint", 0, 20, NN, False, None),
    ("VARCHAR", "varchar(3)", 0, 12, NN, False, None),
    ("VARCHAR", "varchar(3)", 0, 12, 0, False, b""),
    ("DATETIME", "datetime", 0, 19, 0, False, None),
    ("TIMESTAMP", "timestamp", 0, 19, NN, False, None),
    ("ENUM", "enum('a')", 0, 1, NN, True, None),
    ("FLOAT64", "double", 0, 22, NN, False, None),
    ("BIT", "bit(1)", 0, 1, NN, False, None),
    ("TIME", "time", 0, 10, NN, False, None),
    ("DATE", "date", 0, 10, NN, False, None),
]


def _ours(case: tuple[str, str, int, int, int, bool, bytes | None]) -> str:
    type_name, column_type, decimals, length, flags, strings, raw = case
    field = query.Field(
        name="c",
        type=query.Type[type_name],
        column_type=column_type,
        decimals=decimals,
        column_length=length,
        flags=flags,
    )
    convert: Callable[[bytes | None], Any] | None = column_converter(field, strings)
    if convert is None:
        return "OMITTED"
    return json.dumps({"c": convert(raw)})


def test_values_match_the_connectors_converters(debezium: Installation, tmp_path: Path) -> None:
    cases = tmp_path / "cases.tsv"
    cases.write_text(
        "".join(
            "\t".join(
                [t, ct, str(d), str(n), str(f), "1" if s else "0", "NULL" if r is None else r.hex()]
            )
            + "\n"
            for t, ct, d, n, f, s, r in CASES
        ),
        encoding="utf-8",
    )
    classpath = ":".join(str(p) for p in debezium.classpath)
    source = HERE / "java" / "ConverterValues.java"
    result = subprocess.run(
        [debezium.java, "-cp", classpath, str(source), str(cases)],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    # Split on "\n" only: a value may hold U+2028, which splitlines() would split on.
    theirs = result.stdout.decode("utf-8").split("\n")[:-1]
    assert len(theirs) == len(CASES), result.stdout.decode()[-3000:]
    problems = []
    for case, their_line in zip(CASES, theirs, strict=True):
        assert not their_line.startswith("ERROR"), (case, their_line)
        mine = _ours(case)
        if mine == "OMITTED" or their_line == "OMITTED":
            same = mine == their_line
        else:
            a, b = json.loads(mine)["c"], json.loads(their_line)["c"]
            same = type(a) is type(b) and a == b
        if not same:
            problems.append(f"{case}: tail {mine} != connector {their_line}")
    assert not problems, "\n".join(problems)
