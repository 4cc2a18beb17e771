"""Request limits: what a request may hold, checked before any work is done for it.

:func:`check_vstream_request` looks at every client-supplied string and count
that later work is proportional to (resolution, position parsing, filter
compilation on the tablets, one stream per shard) and raises
INVALID_ARGUMENT for the first one over its limit. The message names the
field (with its index), its size, the limit, and the ``vsmux serve`` option
that sets it, and quotes only the start of the value.

Pure and linear in the size of the request. The request size itself is
checked earlier, from the gRPC frame header (``vsmux.server.intake``).
The limits are :class:`~vsmux.core.settings.GatewaySettings` fields.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vsmux.core.quoting import quote
from vsmux.core.settings import GatewaySettings
from vsmux.errors import Code, VStreamError

if TYPE_CHECKING:  # annotations only: the CLI imports OPTIONS without the protos
    from vsmux.proto import binlogdata, vtgate

__all__ = ["OPTIONS", "check_vstream_request", "utf8_length"]

#: The ``vsmux serve`` option of each limit, for the error messages.
OPTIONS = {
    "max_request_bytes": "--max-request-bytes",
    "max_request_fields": "--max-request-fields",
    "max_name_bytes": "--max-name-bytes",
    "max_shard_name_bytes": "--max-shard-name-bytes",
    "max_pattern_bytes": "--max-pattern-bytes",
    "max_gtid_bytes": "--max-gtid-bytes",
    "max_shard_gtids": "--max-shard-gtids",
    "max_filter_rules": "--max-filter-rules",
    "max_filter_sql_bytes": "--max-filter-sql-bytes",
}

# How much of an over-long value the error quotes: enough to recognise it.
_HINT_BYTES = 64


def utf8_length(text: str) -> int:
    """The UTF-8 length of ``text`` (encoding only when the length is in doubt)."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-8", "surrogatepass"))


class _Checker:
    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings

    def _limit(self, name: str) -> int:
        value: int = getattr(self.settings, name)
        return value

    def count(self, field: str, size: int, limit_name: str, advice: str) -> None:
        limit = self._limit(limit_name)
        if size > limit:
            raise VStreamError(
                Code.INVALID_ARGUMENT,
                f"{field} has {size} entries, over the limit of {limit} "
                f"(vsmux serve {OPTIONS[limit_name]}); {advice}",
            )

    def text(self, field: str, value: str, limit_name: str) -> None:
        limit = self._limit(limit_name)
        # A character is 1-4 bytes: most values are decided without encoding.
        if len(value) <= limit // 4:
            return
        size = utf8_length(value)
        if size > limit:
            raise VStreamError(
                Code.INVALID_ARGUMENT,
                f"{field} is {size} bytes long, over the limit of {limit} bytes "
                f"(vsmux serve {OPTIONS[limit_name]}): {quote(value, _HINT_BYTES)}",
            )

    def name_or_pattern(self, field: str, value: str, name_limit: str) -> None:
        """A name, or a ``/regex`` selecting names (with its own limit)."""
        if value.startswith("/"):
            self.text(field, value, "max_pattern_bytes")
        else:
            self.text(field, value, name_limit)


def check_vstream_request(request: vtgate.VStreamRequest, settings: GatewaySettings) -> None:
    """Raise INVALID_ARGUMENT for the first part of ``request`` over a limit."""
    check = _Checker(settings)
    if request.vgtid is not None:
        _check_vgtid(check, request.vgtid)
    if request.filter is not None:
        _check_filter(check, request.filter)
    if request.flags is not None:
        for i, table in enumerate(request.flags.tables_to_copy):
            check.text(f"flags.tables_to_copy[{i}]", table, "max_name_bytes")


def _check_vgtid(check: _Checker, vgtid: binlogdata.VGtid) -> None:
    entries = vgtid.shard_gtids
    check.count(
        "vgtid.shard_gtids",
        len(entries),
        "max_shard_gtids",
        "stream fewer shards per request, or select a keyspace's shards with shard ''",
    )
    for i, sg in enumerate(entries):
        where = f"vgtid.shard_gtids[{i}]"
        check.name_or_pattern(f"{where}.keyspace", sg.keyspace, "max_name_bytes")
        check.text(f"{where}.shard", sg.shard, "max_shard_name_bytes")
        check.text(f"{where}.gtid", sg.gtid, "max_gtid_bytes")
        for j, pk in enumerate(sg.table_p_ks):
            check.text(f"{where}.table_p_ks[{j}].table_name", pk.table_name, "max_name_bytes")


def _check_filter(check: _Checker, filter_: binlogdata.Filter) -> None:
    rules = filter_.rules
    check.count(
        "filter.rules",
        len(rules),
        "max_filter_rules",
        "select tables with a '/regex' rule instead of one rule per table",
    )
    for i, rule in enumerate(rules):
        check.name_or_pattern(f"filter.rules[{i}].match", rule.match, "max_name_bytes")
        check.text(f"filter.rules[{i}].filter", rule.filter, "max_filter_sql_bytes")
