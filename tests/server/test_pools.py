"""Empty allocator pools give their pages back, and the program never notices.

Each case runs in a fresh interpreter: the arena watcher is process-wide and
must be installed before the arenas it is to release are taken, and RSS is
measured for that process alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from vsmux.server import pools

try:
    from vsmux.server import _pools  # noqa: F401
except ImportError:
    BUILT = False
else:
    BUILT = True

needs_extension = pytest.mark.skipif(
    not BUILT, reason="vsmux.server._pools not built (no C compiler at install time)"
)

# Keeps one string in 400 alive while the rest are freed: the survivors keep
# every arena resident, as long-lived objects of a burst do in the gateway.
# Then checks that what lived on and what is allocated after the release
# (in pools whose pages the system zeroed) hold exactly what was stored.
_WORKLOAD = textwrap.dedent(
    """
    import gc, json, sys
    from vsmux.server import pools

    def rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096

    def text(tag, i):
        return tag * (i % 200) + str(i)

    tracked = pools.track_arenas()
    kept, freed = [], []
    for i in range(600_000):
        (kept if i % 400 == 0 else freed).append(text("x", i))
    arenas = pools.arenas_tracked()
    del freed
    gc.collect()
    before = rss()
    released = pools.release_empty_pools()
    after = rss()
    again = [text("y", i) for i in range(400_000)]
    intact = all(s == text("y", i) for i, s in enumerate(again)) and all(
        s == text("x", i * 400) for i, s in enumerate(kept)
    )
    del again
    gc.collect()
    second = pools.release_empty_pools()
    print(json.dumps(dict(tracked=tracked, arenas=arenas, released=released,
                          before=before, after=after, intact=intact, second=second)))
    """
)


def _run(**env: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", _WORKLOAD],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@needs_extension
def test_empty_pools_give_their_pages_back_and_every_object_stays_intact() -> None:
    result = _run()
    assert result["tracked"] is True
    arenas = result["arenas"]
    released = result["released"]
    assert isinstance(arenas, int) and isinstance(released, int)
    assert arenas >= 20  # the workload's ~60 MB of strings took arenas of their own
    # Nearly every pool of those arenas is empty after the collection.
    assert released >= arenas * 64 // 2
    before, after = result["before"], result["after"]
    assert isinstance(before, int) and isinstance(after, int)
    # Three of each pool's four pages go; allow for pages the kernel had not mapped.
    assert before - after >= released * 3 * 4096 // 2
    assert result["intact"] is True
    # The pools used again were set up afresh and empty again: released again.
    second = result["second"]
    assert isinstance(second, int) and second > 0


@needs_extension
@pytest.mark.parametrize(
    ("env", "why"),
    [
        ({"PYTHONMALLOC": "malloc"}, "no pymalloc: nothing of its layout to rely on"),
        ({"PYTHONMALLOC": "pymalloc_debug"}, "debug hooks change the blocks' sizes"),
        ({pools.DISABLE_ENV: "1"}, "switched off"),
    ],
)
def test_it_stays_off_where_it_cannot_or_must_not_work(env: dict[str, str], why: str) -> None:
    result = _run(**env)
    assert result["tracked"] is False, why
    assert result["released"] == 0
    assert result["arenas"] == 0
    assert result["intact"] is True


def test_without_tracking_nothing_is_released() -> None:
    # This process never called track_arenas() (the gateway does at start-up).
    if pools._tracking:
        pytest.skip("another test in this process started tracking")
    assert pools.release_empty_pools() == 0
    assert pools.arenas_tracked() == 0


@needs_extension
def test_the_gateways_memory_release_gives_empty_pools_back() -> None:
    script = textwrap.dedent(
        """
        from vsmux.server import pools
        from vsmux.server.memory import release_memory

        assert pools.track_arenas()
        freed = [str(i) * 3 for i in range(300_000)]
        kept = freed[::500]  # survivors keep the arenas
        del freed
        print(release_memory([]).pools_released)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    assert int(done.stdout.strip().splitlines()[-1]) > 100


# Objects of many sizes, one in 300 kept, so that most pools in use hold a
# block or two on one page and none on the others. Then rounds of churn:
# allocate, free half, release; after each round every survivor and every
# new object must hold what was stored, including those placed in pools
# whose free lists the release shortened.
_USED_POOLS_WORKLOAD = textwrap.dedent(
    """
    import gc, json, random
    from vsmux.server import pools

    def rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096

    def item(i):
        return (i, str(i) * (i % 37), [i] * (i % 23), float(i))

    def intact(items, start, step):
        return all(x == item(start + n * step) for n, x in enumerate(items))

    tracked = pools.track_arenas()
    everything = [item(i) for i in range(300_000)]
    kept = everything[::300]
    del everything
    gc.collect()
    pools.release_empty_pools()
    before = rss()
    pages = pools.release_unused_pages()
    after = rss()
    ok = intact(kept, 0, 300)
    rounds = []
    rng = random.Random(7)
    for r in range(4):
        base = 1_000_000 * (r + 1)
        churn = [item(base + i) for i in range(100_000)]
        ok = ok and intact(churn, base, 1) and intact(kept, 0, 300)
        gone = rng.randrange(2)
        del churn[gone::2]
        gc.collect()
        rounds.append(pools.release_empty_pools() + pools.release_unused_pages())
        ok = ok and intact(churn, base + 1 - gone, 2) and intact(kept, 0, 300)
        more = [item(base + 500_000 + i) for i in range(50_000)]
        ok = ok and intact(more, base + 500_000, 1) and intact(kept, 0, 300)
        del churn, more
    del kept
    gc.collect()
    emptied = pools.release_empty_pools()
    print(json.dumps(dict(tracked=tracked, pages=pages, before=before, after=after,
                          intact=ok, rounds=rounds, emptied=emptied)))
    """
)


@needs_extension
def test_pages_without_live_blocks_go_back_from_pools_in_use() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _USED_POOLS_WORKLOAD],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["tracked"] is True
    pages = result["pages"]
    # Most pools in use keep a block or two: at least one of their three
    # other pages can go, for thousands of pools.
    assert pages >= 1000
    assert result["before"] - result["after"] >= pages * 4096 // 2
    assert result["intact"] is True
    assert all(released > 0 for released in result["rounds"])
    # With the survivors gone the pools empty, and are released as usual
    # (set up afresh next time, lost free blocks and all).
    assert result["emptied"] > 0


def test_without_tracking_no_page_is_released() -> None:
    if pools._tracking:
        pytest.skip("another test in this process started tracking")
    assert pools.release_unused_pages() == 0
