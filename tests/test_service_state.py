"""The service's live state on a generated world, with the real model, FAISS and database:
live updates, the readers-writer lock, rebuild-and-swap, and restarts that re-encode nothing."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from data.schema import Partnership, School, utcnow
from data.settings import StorageSettings
from data.store import Store
from embeddings import EmbeddingSettings, EmbeddingStats
from matching.constraints import Rule, check_pair
from matching.settings import MatchSettings
from service.locks import ReadWriteLock
from service.settings import ServiceSettings
from service.state import ServiceState

DAY = date(2026, 3, 2)


def open_state(data_dir: Path, cache_dir: Path, url: str | None = None, **embedding: Any) -> ServiceState:
    return ServiceState.open(
        StorageSettings(data_dir=data_dir, database_url=url),
        ServiceSettings(change_poll_seconds=3600),  # the tests catch up by hand
        embedding=EmbeddingSettings(show_progress=False, **embedding),
        match=MatchSettings(reference_date=DAY),
        embedding_cache_dir=cache_dir,
    )


def seed(store: Store, world: Any) -> None:
    store.upsert_schools(world.schools)
    store.upsert_partnerships(world.partnerships)


def source_and_top(state: ServiceState) -> tuple[str, list[str]]:
    """A Taiwanese school with suggestions, and their ids."""
    with state.reading() as matcher:
        for school in sorted(matcher.schools.values(), key=lambda s: s.id):
            if school.country == "TW" and school.active:
                ids = [s.school_id for s in matcher.suggest(school.id, 5).suggestions]
                if len(ids) == 5:
                    return school.id, ids
    raise AssertionError("no Taiwanese school with 5 suggestions")


@pytest.fixture
def started(tmp_path: Path, embedding_cache_dir: Path, small_world: Any) -> Iterator[ServiceState]:
    state = open_state(tmp_path, embedding_cache_dir)
    seed(state.store, small_world)
    assert state.start() == "built"
    yield state
    state.close()


# --------------------------------------------------------------------------- the lock


def test_readers_share_the_lock_and_writers_are_alone() -> None:
    lock = ReadWriteLock()
    both_in = threading.Barrier(2, timeout=5)
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            with lock.reading():
                both_in.wait()  # breaks unless two readers hold the lock at once
        except BaseException as exc:
            errors.append(exc)

    readers = [threading.Thread(target=reader) for _ in range(2)]
    for thread in readers:
        thread.start()
    for thread in readers:
        thread.join()
    assert errors == []

    entered = threading.Event()

    def lone_reader() -> None:
        with lock.reading():
            entered.set()

    with lock.writing():
        threading.Thread(target=lone_reader).start()
        assert not entered.wait(0.2), "a reader got in while a writer held the lock"
    assert entered.wait(5)


def test_a_waiting_writer_goes_before_new_readers() -> None:
    lock = ReadWriteLock()
    order: list[str] = []
    first_reader_in, release_first = threading.Event(), threading.Event()

    def long_reader() -> None:
        with lock.reading():
            first_reader_in.set()
            release_first.wait(5)
            order.append("first reader out")

    def writer() -> None:
        with lock.writing():
            order.append("writer")

    def late_reader() -> None:
        with lock.reading():
            order.append("late reader")

    threads = [threading.Thread(target=long_reader)]
    threads[0].start()
    first_reader_in.wait(5)
    threads.append(threading.Thread(target=writer))
    threads[1].start()
    time.sleep(0.1)  # the writer is now waiting for the first reader
    threads.append(threading.Thread(target=late_reader))
    threads[2].start()
    time.sleep(0.1)
    release_first.set()
    for thread in threads:
        thread.join(5)
    assert order == ["first reader out", "writer", "late reader"]


# --------------------------------------------------------------------------- live updates


def test_live_updates_change_the_next_suggestion_without_a_swap(started: ServiceState) -> None:
    source, top = source_and_top(started)
    with started.reading() as matcher:
        before = matcher
    # A profile edit: the top partner now offers no mode the source can use.
    started.store.update_school(top[0], {"exchange_modes": ["hosting"], "languages_exchange": ["ko"]})
    # A new partnership with the second, and an open invitation filling the third's last place.
    started.store.add_partnerships([Partnership(school_a=source, school_b=top[1], start_date=date(2026, 1, 5))])
    third = started.store.get_school(top[2])
    for _ in range(third.capacity):
        inviter = next(
            s.id
            for s in started.store.iter_schools(active=True)
            if s.country == "TW" and s.id != source and not started.store.list_invitations(school_id=s.id)
        )
        started.store.create_invitation(inviter, top[2], None, expires_at=utcnow() + timedelta(days=3))
    assert started.catch_up() > 0

    with started.reading() as matcher:
        assert matcher is before, "single changes are applied in place, not by a rebuild"
        result = matcher.suggest(source, 5)
        ids = [s.school_id for s in result.suggestions]
        assert not {top[0], top[1], top[2]} & set(ids)
        assert matcher.pending[top[2]] >= third.capacity
        ctx_partners = matcher.context().partners(source)
        assert top[1] in ctx_partners
    assert started.catch_up() == 0, "nothing new: nothing applied"


def test_a_cleared_store_is_rebuilt_not_patched(started: ServiceState, make_school: Any) -> None:
    started.store.clear()
    started.store.upsert_schools([make_school(id="tw-after"), make_school(id="my-after", country="MY")])
    started.catch_up()
    assert started.index_size() == {"home": 1, "foreign": 1}
    with started.reading() as matcher:
        assert set(matcher.schools) == {"tw-after", "my-after"}


def test_rebuild_swaps_while_readers_keep_reading(started: ServiceState) -> None:
    source, top = source_and_top(started)
    with started.reading() as matcher:
        old = matcher
    errors: list[BaseException] = []
    seen: list[list[str]] = []
    stop = threading.Event()

    def read() -> None:
        try:
            while not stop.is_set():
                with started.reading() as matcher:
                    seen.append([s.school_id for s in matcher.suggest(source, 5).suggestions])
        except BaseException as exc:
            errors.append(exc)

    readers = [threading.Thread(target=read) for _ in range(2)]
    for thread in readers:
        thread.start()
    started.rebuild()
    stop.set()
    for thread in readers:
        thread.join(10)
    assert errors == []
    assert len(seen) > 2 and all(ids == top for ids in seen), "every read saw a whole index, old or new"
    with started.reading() as matcher:
        assert matcher is not old


# --------------------------------------------------------------------------- restarts


def test_a_restart_loads_the_saved_index_and_encodes_nothing(
    tmp_path: Path, embedding_cache_dir: Path, started: ServiceState
) -> None:
    source, top = source_and_top(started)
    started.store.create_school(_twin_of(started, top[0], "my-restart-twin"))
    started.catch_up()
    with started.reading() as matcher:
        before = matcher.suggest(source, 5)
    started.close()

    again = open_state(tmp_path, embedding_cache_dir)
    assert again.start() == "loaded"
    with again.reading() as matcher:
        after = matcher.suggest(source, 5)
        assert matcher.embedder.stats == EmbeddingStats(encoded=0, cache_hits=0)
        assert "my-restart-twin" in matcher.schools
    assert after == before
    again.close()


def test_changes_made_while_down_are_caught_up_from_the_cache(
    tmp_path: Path, embedding_cache_dir: Path, started: ServiceState
) -> None:
    source, top = source_and_top(started)
    started.close()
    with Store(started.store.url) as other:  # another replica, or the CLI, writes meanwhile
        other.update_school(top[0], {"active": False})
        other.create_school(_twin_of_school(other.get_school(top[1]), "my-while-down"))

    again = open_state(tmp_path, embedding_cache_dir)
    assert again.start() == "loaded"
    with again.reading() as matcher:
        ids = [s.school_id for s in matcher.suggest(source, 10).suggestions]
        assert top[0] not in ids and "my-while-down" in matcher.indexes["foreign"]
        assert matcher.embedder.stats.encoded == 0, "the twin's text was encoded before, as its original's"
    again.close()


def test_a_changed_embedding_recipe_rebuilds_from_cached_text_vectors(
    tmp_path: Path, embedding_cache_dir: Path, started: ServiceState
) -> None:
    started.close()
    again = open_state(tmp_path, embedding_cache_dir, weight_region=0.05)
    assert again.start() == "built"
    with again.reading() as matcher:
        assert matcher.embedder.stats.encoded == 0
    again.close()


def test_pair_rules_see_pending_invitations(started: ServiceState) -> None:
    """The capacity rule counts open invitations through Matcher.set_invitations."""
    source, top = source_and_top(started)
    target = started.store.get_school(top[0])
    started.store.update_school(target.id, {"capacity": 1})
    started.store.create_invitation(source, target.id, None, expires_at=utcnow() + timedelta(days=1))
    started.catch_up()
    with started.reading() as matcher:
        other = next(s for s in matcher.schools.values() if s.country == "TW" and s.id != source and s.active)
        assert Rule.AT_CAPACITY in check_pair(other, matcher.schools[target.id], matcher.context()).violations


def _twin_of(state: ServiceState, school_id: str, new_id: str) -> School:
    return _twin_of_school(state.store.get_school(school_id), new_id)


def _twin_of_school(school: School, new_id: str) -> School:
    return school.model_copy(update={"id": new_id, "created_at": utcnow(), "updated_at": utcnow()})
