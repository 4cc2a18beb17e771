"""Which event types end a unit: the one list the gateway and its clients share.

A *unit* is what must reach a client whole and in one piece: a transaction
(BEGIN ... up to one of :data:`TRANSACTION_ENDS`), a COPY_COMPLETED, or a
reshard JOURNAL. The gateway's grouper buffers a shard's events until one of
these arrives; the client's assembler and the demo's position tracking close
a unit on the same types, so a ROLLBACK ends a unit everywhere or nowhere.
"""

from __future__ import annotations

from vsmux.proto import binlogdata

__all__ = ["TRANSACTION_ENDS", "UNIT_ENDS"]

_T = binlogdata.VEventType

#: Events that close an open transaction (a DDL or OTHER is a unit of its own).
TRANSACTION_ENDS: frozenset[binlogdata.VEventType] = frozenset(
    (_T.COMMIT, _T.DDL, _T.OTHER, _T.ROLLBACK)
)

#: Events after which a client has received a whole unit.
UNIT_ENDS: frozenset[binlogdata.VEventType] = TRANSACTION_ENDS | {
    _T.COPY_COMPLETED,
    _T.JOURNAL,
}
