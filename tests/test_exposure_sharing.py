"""Exposure counts shared through the store, read back incrementally: a replica's turn reads only
the rows written since its last one, and still ends up with exactly every replica's counts."""

from __future__ import annotations

import random

import pytest

from data.store import Store
from graph import ExposureLedger, share_exposure

HOUR = 3600.0


def fresh_counts(store: Store, at: float, half_life: float) -> dict[str, float]:
    """Every school's shared count, read whole (what a new replica's first turn takes)."""
    changes = store.exposure_changes(since=-1, seen_origin=None, now=at, half_life=half_life)
    return {school_id: count for school_id, (_, count) in changes.counts.items()}


def test_a_turn_reads_back_only_the_rows_written_since_the_last(store: Store) -> None:
    now = [1_000_000.0]
    ledger = ExposureLedger(half_life_hours=1.0, clock=lambda: now[0])
    ledger.record(["tw-a", "tw-b"], side="home")
    share_exposure(ledger, store)
    origin, version = ledger.store_cursor
    assert origin == now[0] and version >= 1

    store.add_exposure({"tw-b": ("home", 2.0), "de-c": ("foreign", 1.0)}, now=now[0], half_life=HOUR)
    later = store.exposure_changes(since=version, seen_origin=origin, now=now[0], half_life=HOUR)
    assert set(later.counts) == {"tw-b", "de-c"} and later.version > version
    assert later.counts["tw-b"] == ("home", pytest.approx(3.0))
    unchanged = store.exposure_changes(since=later.version, seen_origin=origin, now=now[0], half_life=HOUR)
    assert unchanged.counts == {} and unchanged.version == later.version


@pytest.mark.parametrize("seed", [1, 2])
def test_replicas_reading_incrementally_agree_with_a_whole_read(store: Store, seed: int) -> None:
    rng = random.Random(seed)
    now = [1_000_000.0]
    replicas = [ExposureLedger(half_life_hours=2.0, clock=lambda: now[0]) for _ in range(3)]
    schools = [(f"tw-{n}", "home") for n in range(12)] + [(f"jp-{n}", "foreign") for n in range(12)]
    for _ in range(40):
        ledger = rng.choice(replicas)
        side = rng.choice(["home", "foreign"])
        shown = rng.sample([school for school, s in schools if s == side], 3)
        ledger.record(shown, side=side)
        if rng.random() < 0.3:
            share_exposure(rng.choice(replicas), store)
        now[0] += rng.uniform(0, 900)
    for ledger in replicas:  # every replica's last counts reach the store ...
        share_exposure(ledger, store)
    for ledger in replicas:  # ... and every replica's next turn takes them all back
        share_exposure(ledger, store)
    whole = fresh_counts(store, now[0], replicas[0].half_life)
    assert sum(whole.values()) > 0
    for ledger in replicas:
        assert {school: ledger.count(school) for school in whole} == pytest.approx(whole)
        for side in ("home", "foreign"):
            expected = sum(count for school, count in whole.items() if school.startswith("tw-") == (side == "home"))
            assert ledger.total(side) == pytest.approx(expected)


def test_a_rescaled_store_is_read_whole_again(store: Store) -> None:
    now = [1_000_000.0]
    first = ExposureLedger(half_life_hours=1.0, clock=lambda: now[0])
    second = ExposureLedger(half_life_hours=1.0, clock=lambda: now[0])
    first.record(["tw-a"] * 4, side="home")
    share_exposure(first, store)
    share_exposure(second, store)
    old_origin = second.store_cursor[0]
    now[0] += 70 * HOUR  # past the store's rebase point: every weight is rescaled to a new origin
    first.record(["tw-b"], side="home")
    share_exposure(first, store)
    share_exposure(second, store)
    assert second.store_cursor[0] != old_origin
    assert second.count("tw-a") == pytest.approx(4 * 2.0**-70)
    assert second.count("tw-b") == pytest.approx(1.0)
    assert second.total("home") == pytest.approx(1.0 + 4 * 2.0**-70)


def test_counts_the_store_could_not_take_are_shared_on_the_next_turn(store: Store) -> None:
    now = [1_000_000.0]
    ledger = ExposureLedger(half_life_hours=1.0, clock=lambda: now[0])
    ledger.record(["tw-a", "tw-a"], side="home")
    shown, at = ledger.unshared()
    ledger.give_back(shown, at=at)  # what share_exposure does when the store is away
    share_exposure(ledger, store)
    assert fresh_counts(store, now[0], ledger.half_life) == {"tw-a": pytest.approx(2.0)}
    assert ledger.count("tw-a") == pytest.approx(2.0)


def test_counts_go_through_the_store_to_the_last_bit(store: Store) -> None:
    """The counts travel as JSON text both ways (one statement each): every double written comes
    back as the same double, decayed exactly as weight / scale in Python, and an origin's first
    write starts every version count."""
    rng = random.Random(5)
    now, half_life = 1_000_000.0, 7 * 24 * HOUR
    counts = [rng.random() * 10 ** rng.randint(-6, 6) for _ in range(3000)] + [1.0, 0.1, 1 / 3, 2.0**-40, 5e-324]
    shown = {f"tw-{n}": ("home" if n % 2 else "foreign", count) for n, count in enumerate(counts)}
    store.add_exposure(shown, now=now, half_life=half_life)
    back = store.exposure_changes(since=-1, seen_origin=None, now=now, half_life=half_life)
    assert back.counts == shown and back.origin == now and back.version == 1
    later = now + 5 * HOUR
    store.add_exposure({"tw-1": ("home", 2.5)}, now=later, half_life=half_life)
    scale = 2.0 ** ((later - now) / half_life)
    again = store.exposure_changes(since=1, seen_origin=now, now=later, half_life=half_life)
    assert again.counts == {"tw-1": ("home", (counts[1] + 2.5 * scale) / scale)} and again.version == 2
    assert store.exposure_changes(since=2, seen_origin=now, now=later, half_life=half_life).counts == {}
