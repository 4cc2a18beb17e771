"""The demo schema and the ``query.Field`` metadata a vttablet would send.

Every keyspace of a simulated cluster holds the same three tables:

- ``customer(customer_id bigint PK, email varchar(128) NULL, created datetime)``
- ``corder(order_id bigint PK, customer_id bigint, sku varbinary(64), price decimal(10,2) NULL)``
- ``product(sku varbinary(64) PK, description varchar(256) NULL, price decimal(10,2))``

Schemas are immutable values. A DDL replaces a table's schema with a new
version (the simulated DDLs only change a column's declared width, so stored
rows keep their shape) and streams send a fresh FIELD event for it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from vsmux.proto import query

__all__ = ["DEMO_TABLES", "Column", "TableSchema", "demo_schema"]

# MySQL column flags (include/mysql_com.h).
NOT_NULL = 1
PRI_KEY = 2
BINARY = 128
PART_KEY = 16384
NUM = 32768

CHARSET_BINARY = 63
CHARSET_UTF8MB4 = 255


@dataclass(frozen=True, slots=True)
class Column:
    """One column of a simulated table, with the metadata a vttablet reports for it.

    :meth:`TableSchema.fields` turns each column into a ``query.Field`` of the
    FIELD event, so clients decode the simulated rows exactly as they would a
    real tablet's: ``type`` says how the value is written, ``column_type`` is
    MySQL's declared type (``varchar(128)``), and ``charset`` and ``flags``
    are MySQL's numbers (63 is binary; ``flags`` as in ``mysql_com.h``).
    """

    name: str
    type: query.Type
    column_type: str
    column_length: int
    charset: int
    flags: int
    decimals: int = 0

    @property
    def numeric_key(self) -> bool:
        """Whether values sort as integers (else as raw bytes)."""
        return self.type in (query.Type.INT64, query.Type.UINT64, query.Type.INT32)


@dataclass(frozen=True, slots=True)
class TableSchema:
    """One table: ordered columns, the primary-key column indexes, a version."""

    name: str
    columns: tuple[Column, ...]
    pk: tuple[int, ...]
    version: int = 1

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def fields(self, keyspace: str) -> list[query.Field]:
        """The FIELD-event metadata, as a vttablet reports it."""
        return [
            query.Field(
                name=c.name,
                type=c.type,
                table=self.name,
                org_table=self.name,
                database=f"vt_{keyspace}",
                org_name=c.name,
                column_length=c.column_length,
                charset=c.charset,
                decimals=c.decimals,
                flags=c.flags,
                column_type=c.column_type,
            )
            for c in self.columns
        ]

    def pk_fields(self, keyspace: str) -> list[query.Field]:
        every = self.fields(keyspace)
        return [every[i] for i in self.pk]

    def pk_of(self, values: tuple[bytes | None, ...]) -> tuple[bytes, ...]:
        """The primary-key tuple of a row (raw text values)."""
        return tuple(values[i] or b"" for i in self.pk)

    def sort_key(self, pk: tuple[bytes, ...]) -> tuple[int | bytes, ...]:
        """Key order as MySQL sorts the primary key (numbers numerically)."""
        return tuple(
            int(v) if self.columns[i].numeric_key else v for i, v in zip(self.pk, pk, strict=True)
        )

    def widened(self, column: str, width: int) -> TableSchema:
        """A new version with ``column``'s declared width changed (a simulated DDL)."""
        cols = []
        for c in self.columns:
            if c.name == column:
                base = c.column_type.split("(")[0]
                per_char = 4 if c.charset == CHARSET_UTF8MB4 else 1
                c = replace(c, column_type=f"{base}({width})", column_length=width * per_char)
            cols.append(c)
        return replace(self, columns=tuple(cols), version=self.version + 1)


def _bigint(name: str, pk: bool = False) -> Column:
    flags = NUM | (NOT_NULL | PRI_KEY | PART_KEY if pk else 0)
    return Column(name, query.Type.INT64, "bigint", 20, CHARSET_BINARY, flags)


def _varchar(name: str, width: int) -> Column:
    return Column(name, query.Type.VARCHAR, f"varchar({width})", width * 4, CHARSET_UTF8MB4, 0)


def _varbinary(name: str, width: int, pk: bool = False) -> Column:
    flags = BINARY | (NOT_NULL | PRI_KEY | PART_KEY if pk else 0)
    return Column(name, query.Type.VARBINARY, f"varbinary({width})", width, CHARSET_BINARY, flags)


def _decimal(name: str, not_null: bool) -> Column:
    flags = NUM | (NOT_NULL if not_null else 0)
    return Column(name, query.Type.DECIMAL, "decimal(10,2)", 12, CHARSET_BINARY, flags, 2)


def _datetime(name: str) -> Column:
    return Column(name, query.Type.DATETIME, "datetime", 19, CHARSET_BINARY, NOT_NULL | BINARY)


DEMO_TABLES = ("corder", "customer", "product")


def demo_schema() -> dict[str, TableSchema]:
    """Fresh version-1 schemas of the demo tables, by name."""
    return {
        "customer": TableSchema(
            "customer",
            (_bigint("customer_id", pk=True), _varchar("email", 128), _datetime("created")),
            (0,),
        ),
        "corder": TableSchema(
            "corder",
            (
                _bigint("order_id", pk=True),
                _bigint("customer_id"),
                _varbinary("sku", 64),
                _decimal("price", not_null=False),
            ),
            (0,),
        ),
        "product": TableSchema(
            "product",
            (
                _varbinary("sku", 64, pk=True),
                _varchar("description", 256),
                _decimal("price", not_null=True),
            ),
            (0,),
        ),
    }
