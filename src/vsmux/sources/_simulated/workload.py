"""A seeded, deterministic generator of demo transactions.

The generator decides *what* a transaction does (inserts, updates with
before images, deletes, multi-row and multi-table changes, occasional DDL and
rare large transactions of thousands of rows); the cluster applies it. Given
the same seed and the same sequence of calls it produces the same
statements, so tests and benchmarks are reproducible.

The mix inserts more rows than it deletes, so tables grow; with
``max_rows`` set, a table that holds more rows than that gets an archiving
transaction (deletes of random rows, back to 90% of the bound) instead of
the drawn one, as a purge job on a real database would. That keeps a
long-running workload's memory flat; the deletes are ordinary logged
transactions, so streams and ground truth stay exact.

Values exercise the row encoding: NULLs, empty strings, non-ASCII text,
binary keys containing zero bytes, decimals and datetimes in MySQL text form.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "ARCHIVE_MAX_ROWS",
    "DEFAULT_MAX_TABLE_ROWS",
    "Alter",
    "Delete",
    "KeyspaceView",
    "Statement",
    "Upsert",
    "WorkloadGenerator",
]

# Rows per table per keyspace the workload keeps by default. Rows cost about
# 450 bytes each in memory (values, key, key index), so the three demo tables
# stay under ~30 MB per keyspace, and a copy of a whole keyspace stays a
# matter of seconds; at the demo's 50 writes/s the busiest table reaches the
# bound in about a minute, the others within the hour.
DEFAULT_MAX_TABLE_ROWS = 20_000
# The most rows one archiving transaction deletes: as large as the largest
# drawn transaction, so it is no worse for a stream than those.
ARCHIVE_MAX_ROWS = 5000
# Tables in the order the bound is checked (fixed, for determinism).
_TABLES = ("corder", "customer", "product")

Key = tuple[bytes, ...]
Values = dict[str, bytes | None]


@dataclass(frozen=True, slots=True)
class Upsert:
    """Insert a row, or update it if its key exists (``values`` may be partial)."""

    table: str
    values: Values


@dataclass(frozen=True, slots=True)
class Delete:
    """Delete the row of ``table`` whose primary key is ``key`` (a no-op if there is none).

    ``key`` holds the primary-key values in the table's key-column order, as
    MySQL text bytes. The workload draws keys from rows that exist; a test may
    name any key.
    """

    table: str
    key: Key


@dataclass(frozen=True, slots=True)
class Alter:
    """``alter table <table> modify <column> <type>(<width>)`` on every shard."""

    table: str
    column: str
    width: int


Statement = Upsert | Delete | Alter


class KeyspaceView(Protocol):
    """What the generator may read from the keyspace it writes to."""

    def random_key(self, table: str, rng: random.Random) -> Key | None: ...

    def next_id(self, table: str) -> int: ...

    def row_count(self, table: str) -> int: ...


_EMAIL_WIDTHS = (128, 160, 192, 255)


class WorkloadGenerator:
    """Draws transactions; see the module docstring."""

    def __init__(
        self,
        rng: random.Random,
        *,
        ddl_probability: float = 0.005,
        large_probability: float = 0.002,
        large_rows: tuple[int, int] = (2000, 5000),
        max_rows: int | None = None,
    ) -> None:
        if max_rows is not None and max_rows < 10:
            raise ValueError("max_rows must be at least 10 (or None: no bound)")
        self.rng = rng
        self.ddl_probability = ddl_probability
        self.large_probability = large_probability
        self.large_rows = large_rows
        self.max_rows = max_rows

    def next_transaction(self, view: KeyspaceView) -> list[Statement]:
        rng = self.rng
        if self.max_rows is not None:
            for table in _TABLES:
                over = view.row_count(table) - self.max_rows
                if over > 0:
                    return self._archive(view, table, over + self.max_rows // 10)
        roll = rng.random()
        if roll < self.ddl_probability:
            return [Alter("customer", "email", rng.choice(_EMAIL_WIDTHS))]
        roll -= self.ddl_probability
        if roll < self.large_probability:
            count = rng.randint(*self.large_rows)
            customer = self._customer(view)
            return [customer, *(self._order(view, customer) for _ in range(count))]
        kind = rng.choices(
            ("customers", "orders", "email", "price", "cancel", "product", "churn"),
            weights=(20, 25, 15, 10, 8, 12, 4),
        )[0]
        if kind == "customers":
            return [self._customer(view) for _ in range(rng.randint(1, 3))]
        if kind == "orders":
            key = view.random_key("customer", rng)
            statements: list[Statement] = []
            if key is None or rng.random() < 0.3:
                new = self._customer(view)
                statements.append(new)
                cid = new.values["customer_id"]
            else:
                cid = key[0]
            for _ in range(rng.randint(1, 5)):
                statements.append(self._order_for(view, cid))
            return statements
        if kind == "email":
            key = view.random_key("customer", rng)
            if key is None:
                return [self._customer(view)]
            return [Upsert("customer", {"customer_id": key[0], "email": self._email()})]
        if kind == "price":
            key = view.random_key("corder", rng)
            if key is None:
                return [self._order(view, None)]
            return [Upsert("corder", {"order_id": key[0], "price": self._price(nullable=True)})]
        if kind == "cancel":
            key = view.random_key("corder", rng)
            return [Delete("corder", key)] if key else [self._order(view, None)]
        if kind == "product":
            key = view.random_key("product", rng)
            if key is not None and rng.random() < 0.5:
                return [Upsert("product", {"sku": key[0], "description": self._text()})]
            return [self._product() for _ in range(rng.randint(1, 2))]
        key = view.random_key("customer", rng)
        return [Delete("customer", key)] if key else [self._customer(view)]

    def _archive(self, view: KeyspaceView, table: str, count: int) -> list[Statement]:
        """Deletes of up to ``count`` random rows of ``table`` (a repeat deletes nothing)."""
        statements: list[Statement] = []
        for _ in range(min(count, ARCHIVE_MAX_ROWS)):
            key = view.random_key(table, self.rng)
            if key is None:
                break
            statements.append(Delete(table, key))
        return statements

    # -- values ------------------------------------------------------------

    def _customer(self, view: KeyspaceView) -> Upsert:
        cid = str(view.next_id("customer")).encode()
        created = (
            f"20{self.rng.randint(20, 25)}-{self.rng.randint(1, 12):02d}-"
            f"{self.rng.randint(1, 28):02d} {self.rng.randint(0, 23):02d}:"
            f"{self.rng.randint(0, 59):02d}:{self.rng.randint(0, 59):02d}"
        )
        return Upsert(
            "customer", {"customer_id": cid, "email": self._email(), "created": created.encode()}
        )

    def _order(self, view: KeyspaceView, customer: Upsert | None) -> Upsert:
        if customer is not None:
            cid = customer.values["customer_id"]
        else:
            key = view.random_key("customer", self.rng)
            cid = key[0] if key else b"0"
        return self._order_for(view, cid)

    def _order_for(self, view: KeyspaceView, cid: bytes | None) -> Upsert:
        return Upsert(
            "corder",
            {
                "order_id": str(view.next_id("corder")).encode(),
                "customer_id": cid,
                "sku": self.rng.randbytes(self.rng.randint(0, 12)),
                "price": self._price(nullable=True),
            },
        )

    def _product(self) -> Upsert:
        return Upsert(
            "product",
            {
                "sku": b"\x00" + self.rng.randbytes(self.rng.randint(1, 10)),
                "description": self._text(),
                "price": self._price(nullable=False),
            },
        )

    def _email(self) -> bytes | None:
        roll = self.rng.random()
        n = self.rng.randint(1, 10**6)
        if roll < 0.05:
            return None
        if roll < 0.1:
            return b""
        if roll < 0.2:
            return f"jos\u00e9.{n}@ex\u00e4mple.com".encode()
        return f"user{n}@example.com".encode()

    def _price(self, *, nullable: bool) -> bytes | None:
        if nullable and self.rng.random() < 0.05:
            return None
        cents = self.rng.randint(0, 99_999_999)
        return f"{cents // 100}.{cents % 100:02d}".encode()

    def _text(self) -> bytes | None:
        roll = self.rng.random()
        if roll < 0.05:
            return None
        if roll < 0.1:
            return b""
        words = ("red", "blue", "mug", "lamp", "chair", "\u00fcber", "desk", "\u2603")
        return " ".join(self.rng.choice(words) for _ in range(self.rng.randint(1, 8))).encode()
