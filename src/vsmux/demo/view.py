"""Rendering the demo: a rich screen for terminals, plain lines otherwise."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from vsmux.demo.feed_view import FeedWatch, feeds_table
from vsmux.demo.state import RECENT_CHANGES, StreamWatch

__all__ = ["plain_line", "render"]

# Row changes shown at least, however many feeds there are.
MIN_CHANGES = 4


def _short_position(position: str) -> str:
    # MySQL56/<uuid>:1-1234 -> ...<uuid tail>:1-1234; keeps the part that moves.
    if len(position) <= 24:
        return position
    return "..." + position[-21:]


def render(
    watch: StreamWatch, now: float, header: str, feeds: FeedWatch | None = None
) -> RenderableType:
    """The live screen: header, per-shard table, the feeds, recent row changes, notes."""
    events_rate, tx_rate = watch.rates(now)
    title = Text.assemble(
        ("vsmux demo", "bold cyan"),
        f"  {watch.total_events} events, {watch.total_transactions} transactions, "
        f"{events_rate:,.0f} events/s, {tx_rate:,.0f} tx/s, up {now - watch.started_at:,.0f}s",
    )
    shards = Table(expand=True, title="shards (merged into one stream)", title_justify="left")
    shards.add_column("keyspace/shard", style="bold")
    shards.add_column("position (VGTID)", no_wrap=True)
    shards.add_column("events", justify="right")
    shards.add_column("tx", justify="right")
    shards.add_column("lag s", justify="right")
    shards.add_column("last event", justify="right")
    for (keyspace, shard), view in sorted(watch.shards.items()):
        idle = now - view.last_event_at if view.last_event_at else None
        shards.add_row(
            f"{keyspace}/{shard}",
            _short_position(view.position),
            f"{view.events:,}",
            f"{view.transactions:,}",
            "-" if view.lag_seconds is None else f"{view.lag_seconds:.1f}",
            "-" if idle is None else f"{idle:.1f}s ago",
        )
    changes = Table(expand=True, title="recent row changes", title_justify="left")
    changes.add_column("op", min_width=6, no_wrap=True)
    changes.add_column("table", min_width=17, no_wrap=True)
    changes.add_column("shard", min_width=5, no_wrap=True)
    changes.add_column("row", overflow="ellipsis", no_wrap=True, ratio=1)
    styles = {"INSERT": "green", "UPDATE": "yellow", "DELETE": "red"}
    # The feeds table's rows come out of the changes', so the screen keeps its height.
    shown = (
        len(watch.recent) if feeds is None else max(MIN_CHANGES, RECENT_CHANGES - len(feeds.feeds))
    )
    for line in list(reversed(watch.recent))[:shown]:
        changes.add_row(
            Text(line.op, style=styles.get(line.op, "")), line.table, line.shard, line.values
        )
    notes = Text("\n".join(watch.notes) or "(nothing yet)", style="dim")
    parts: list[RenderableType] = [Panel(Text(header), title=title, title_align="left"), shards]
    if feeds is not None:
        parts.append(feeds_table(feeds))
    parts += [changes, Panel(notes, title="events", title_align="left")]
    return Group(*parts)


def plain_line(watch: StreamWatch, now: float) -> str:
    """One status line for logs and pipes."""
    events_rate, tx_rate = watch.rates(now)
    shards = " ".join(
        f"{ks}/{sh}:{view.transactions}tx" for (ks, sh), view in sorted(watch.shards.items())
    )
    return (
        f"[{now - watch.started_at:6.1f}s] events={watch.total_events} "
        f"tx={watch.total_transactions} rate={events_rate:.0f}ev/s {tx_rate:.0f}tx/s {shards}"
    )
