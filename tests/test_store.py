"""The Store on SQLite and PostgreSQL: CRUD, filters, change tracking, partnerships, concurrency."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, date, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from pydantic import ValidationError

from data.errors import Conflict, ImportRejected, NotFound
from data.schema import Partnership, School
from data.store import Store, UpsertCounts, normalize_url
from data.tables import metadata
from tests.conftest import connection

MakeSchool = Callable[..., School]


def school_changes(store: Store, seq: int) -> list[tuple[int, str, str]]:
    """The school changes after seq as (seq, school id, op)."""
    return [(at, entity, op) for at, kind, entity, op in store.all_changes_since(seq) if kind == "school"]


def partnership_changes(store: Store, seq: int) -> list[tuple[int, str, str]]:
    """The partnership changes after seq as (seq, partnership id, op)."""
    return [(at, entity, op) for at, kind, entity, op in store.all_changes_since(seq) if kind == "partnership"]


def test_migrations_create_exactly_the_tables_the_code_queries(store: Store) -> None:
    with connection(store) as conn:
        differences = compare_metadata(MigrationContext.configure(conn), metadata)
    assert differences == []


def test_reopening_a_migrated_database_keeps_its_data(store_url: str, make_school: MakeSchool) -> None:
    with Store(store_url) as first:
        first.create_school(make_school(id="tw-keep"))
    with Store(store_url) as second:
        assert second.get_school("tw-keep").id == "tw-keep"


def test_normalize_url_uses_psycopg3() -> None:
    assert normalize_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("sqlite:///x.db") == "sqlite:///x.db"


# --------------------------------------------------------------------------- schools


def test_create_get_and_conflict(store: Store, make_school: MakeSchool) -> None:
    school = make_school(id="tw-100", name_local="臺北國小")
    store.create_school(school)
    got = store.get_school("tw-100")
    assert got == school
    assert got.content_hash() == school.content_hash()
    with pytest.raises(Conflict, match="tw-100"):
        store.create_school(make_school(id="tw-100"))
    with pytest.raises(NotFound, match="nobody"):
        store.get_school("nobody")
    assert set(store.get_schools(["tw-100", "nobody"])) == {"tw-100"}


def test_update_revalidates_bumps_updated_at_and_logs_only_real_changes(store: Store, make_school: MakeSchool) -> None:
    original = store.create_school(make_school(id="tw-200", capacity=2))
    seq = store.latest_change_seq()

    same = store.update_school("tw-200", {"capacity": 2})
    assert same.updated_at == original.updated_at
    assert school_changes(store, seq) == []

    time.sleep(0.01)
    changed = store.update_school("tw-200", {"capacity": 5, "levels": ["primary", "junior_high"]})
    assert changed.capacity == 5
    assert changed.grades == list(range(1, 10)), "derived grades follow the new levels"
    assert changed.created_at == original.created_at
    assert changed.updated_at > original.updated_at
    assert store.get_school("tw-200") == changed
    assert [op for _, _, op in school_changes(store, seq)] == ["update"]

    moved = store.update_school("tw-200", {"region": "花蓮縣"})
    assert moved.region == "TW-HUA"

    with pytest.raises(ValidationError, match="capacity"):
        store.update_school("tw-200", {"capacity": -1})
    with pytest.raises(ValidationError, match="no_such_field"):
        store.update_school("tw-200", {"no_such_field": 1})
    with pytest.raises(ValueError, match="id: a school's id cannot change"):
        store.update_school("tw-200", {"id": "tw-201"})
    with pytest.raises(NotFound):
        store.update_school("tw-missing", {"capacity": 1})
    assert store.get_school("tw-200").capacity == 5


def test_deactivate_hides_from_default_listing_and_logs_deactivate(store: Store, make_school: MakeSchool) -> None:
    store.create_school(make_school(id="tw-300"))
    seq = store.latest_change_seq()
    assert store.deactivate_school("tw-300").active is False
    assert school_changes(store, seq) == [(seq + 1, "tw-300", "deactivate")]
    assert store.list_schools() == []
    assert [s.id for s in store.list_schools(active=None)] == ["tw-300"]
    assert [s.id for s in store.list_schools(active=False)] == ["tw-300"]
    assert store.count_schools() == 0 and store.count_schools(active=None) == 1


def test_upsert_counts_and_keeps_unchanged_rows_untouched(store: Store, make_school: MakeSchool) -> None:
    a, b = make_school(id="tw-a"), make_school(id="tw-b")
    assert store.upsert_schools([a, b]) == UpsertCounts(created=2)
    before = store.get_school("tw-a")
    seq = store.latest_change_seq()

    b2 = b.model_copy(update={"capacity": 9})
    c = make_school(id="tw-c")
    assert store.upsert_schools([a, b2, c]) == UpsertCounts(created=1, updated=1, unchanged=1)
    assert store.get_school("tw-a").updated_at == before.updated_at
    assert store.get_school("tw-b").capacity == 9
    assert store.get_school("tw-b").created_at == b.created_at
    assert sorted((sid, op) for _, sid, op in school_changes(store, seq)) == [("tw-b", "update"), ("tw-c", "create")]

    gone = b2.model_copy(update={"active": False})
    store.upsert_schools([gone])
    assert school_changes(store, seq)[-1][1:] == ("tw-b", "deactivate")


def test_upsert_is_all_or_nothing(store: Store, make_school: MakeSchool) -> None:
    good = [make_school(id=f"tw-ok{i}") for i in range(3)]
    # A record that cannot be stored: its latitude is not a number, so writing it fails mid-batch.
    broken = School.model_construct(**(make_school(id="tw-bad").model_dump() | {"latitude": object()}))
    with pytest.raises(Exception):  # noqa: B017 - whatever the failure, nothing may be written
        store.upsert_schools([*good, broken])
    assert store.count_schools(active=None) == 0
    assert store.latest_change_seq() == 0
    with pytest.raises(ValueError, match="appears more than once"):
        store.upsert_schools([good[0], good[0]])


def test_list_filters_on_both_backends(store: Store, make_school: MakeSchool) -> None:
    store.upsert_schools(
        [
            make_school(id="tw-1", region="臺北市", levels=["primary"], sdgs=[4], remoteness="ordinary"),
            make_school(
                id="tw-2",
                region="TW-HUA",
                levels=["junior_high"],
                sdgs=[14],
                remoteness="remote",
                exchange_modes=["visit"],
                languages_exchange=["zh"],
            ),
            make_school(
                id="tw-3",
                region="TW-HUA",
                levels=["primary", "junior_high"],
                sdgs=[4, 14],
                remoteness="extremely_remote",
                target_countries=["VN"],
                name_en="Mountain 100% School",
            ),
            make_school(
                id="my-1",
                country="MY",
                region="Perak",
                name_en="SJK(C) Pheng Lok",
                name_local="平乐华小",
                languages_exchange=["zh", "en", "ms"],
            ),
        ]
    )

    def ids(**filters: object) -> list[str]:
        found = [s.id for s in store.list_schools(**filters)]
        assert store.count_schools(**filters) == len(found)
        return found

    assert ids() == ["my-1", "tw-1", "tw-2", "tw-3"]
    assert ids(country="tw") == ["tw-1", "tw-2", "tw-3"]
    assert ids(country=["MY", "TW"]) == ["my-1", "tw-1", "tw-2", "tw-3"]
    assert ids(region="TW-HUA") == ["tw-2", "tw-3"]
    assert ids(region="MY-08") == ["my-1"]
    assert ids(level="junior_high") == ["tw-2", "tw-3"]
    assert ids(sdg=4) == ["my-1", "tw-1", "tw-3"]  # 4 must not match 14
    assert ids(sdg=14) == ["tw-2", "tw-3"]
    assert ids(mode="visit") == ["tw-2"]
    assert ids(remoteness=["remote", "extremely_remote"]) == ["tw-2", "tw-3"]
    assert ids(target_country="VN") == ["tw-3"]
    assert ids(target_country="TW") == ["my-1"]
    assert ids(language="ms") == ["my-1"]
    assert ids(language="English") == ["my-1", "tw-1", "tw-3"]
    assert ids(q="pheng") == ["my-1"]
    assert ids(q="平乐") == ["my-1"]
    assert ids(q="100%") == ["tw-3"]
    assert ids(q="%") == ["tw-3"], "a % in the query is a literal, not a wildcard"
    assert ids(level="primary", sdg=14, region="TW-HUA") == ["tw-3"]
    assert ids(level=[]) == []
    with pytest.raises(ValueError, match="level: 'kindergarten' is not one of"):
        store.list_schools(level="kindergarten")
    with pytest.raises(ValueError, match="sdg"):
        store.list_schools(sdg=18)
    with pytest.raises(TypeError, match=r"unknown school filter.*contry"):
        store.count_schools(contry="TW")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="limit"):
        store.list_schools(limit=0)


def test_cursor_pagination_and_iteration_visit_every_school_once(store: Store, make_school: MakeSchool) -> None:
    all_ids = sorted([f"tw-{i:03d}" for i in range(23)] + ["TW-UPPER", "tw.dot", "tw_under"])
    store.upsert_schools([make_school(id=i) for i in all_ids])
    pages: list[str] = []
    after = None
    while page := store.list_schools(after=after, limit=5):
        pages.extend(s.id for s in page)
        after = page[-1].id
    assert pages == all_ids
    assert [s.id for s in store.iter_schools(batch=4)] == all_ids
    store.deactivate_school(all_ids[0])
    assert [s.id for s in store.iter_schools(active=True, batch=7)] == all_ids[1:]


# --------------------------------------------------------------------------- partnerships


@pytest.fixture
def two_countries(store: Store, make_school: MakeSchool) -> None:
    store.upsert_schools(
        [
            make_school(id="tw-p1"),
            make_school(id="tw-p2"),
            make_school(id="my-p1", country="MY"),
            make_school(id="vn-p1", country="VN"),
        ]
    )


@pytest.mark.usefixtures("two_countries")
def test_partnerships_are_canonical_and_re_adding_updates(store: Store) -> None:
    seq = store.latest_change_seq()
    [added] = store.add_partnerships([Partnership(school_a="tw-p1", school_b="my-p1", start_date=date(2024, 3, 1))])
    assert added.id and (added.school_a, added.school_b) == ("my-p1", "tw-p1")
    assert store.get_partnership(added.id) == added

    [again] = store.add_partnerships(
        [Partnership(school_a="my-p1", school_b="tw-p1", start_date=date(2024, 3, 1), modes=["virtual"], sdgs=[4])]
    )
    assert again.id == added.id
    assert len(store.list_partnerships()) == 1
    assert store.get_partnership(added.id).modes == ["virtual"]
    assert store.upsert_partnerships([again]) == UpsertCounts(unchanged=1)
    assert [op for _, _, op in partnership_changes(store, seq)] == ["add", "update"]
    assert school_changes(store, seq) == [], "partnership changes are not school changes"


@pytest.mark.usefixtures("two_countries")
def test_bad_partnerships_are_all_reported_and_none_written(store: Store) -> None:
    batch = [
        Partnership(school_a="tw-p1", school_b="vn-p1", start_date=date(2024, 1, 1)),
        Partnership(school_a="tw-p1", school_b="tw-p2", start_date=date(2024, 1, 1)),
        Partnership(school_a="ghost", school_b="my-p1", start_date=date(2024, 1, 1)),
    ]
    with pytest.raises(ImportRejected) as caught:
        store.add_partnerships(batch)
    errors = caught.value.errors
    assert [(e.line, e.field) for e in errors] == [(2, "school_b"), (3, "school_a")]
    assert "partnerships must cross a border" in errors[0].reason
    assert "ghost" in errors[1].reason
    assert len(store.list_partnerships()) == 0


@pytest.mark.usefixtures("two_countries")
def test_end_and_list_partnerships(store: Store) -> None:
    first, second = store.add_partnerships(
        [
            Partnership(id="p-first", school_a="tw-p1", school_b="my-p1", start_date=date(2023, 1, 1)),
            Partnership(school_a="tw-p2", school_b="vn-p1", start_date=date(2024, 1, 1)),
        ]
    )
    assert first.id == "p-first"
    seq = store.latest_change_seq()
    ended = store.end_partnership("p-first", date(2024, 6, 30))
    assert ended.end_date == date(2024, 6, 30) and not ended.active
    assert partnership_changes(store, seq) == [(seq + 1, "p-first", "end")]
    with pytest.raises(Conflict, match="already ended"):
        store.end_partnership("p-first", date(2024, 7, 1))
    with pytest.raises(NotFound):
        store.end_partnership("p-none", date(2024, 7, 1))
    with pytest.raises(ValidationError, match="end_date"):
        store.end_partnership(second.id, date(2020, 1, 1))

    assert [p.id for p in store.list_partnerships()] == ["p-first", second.id]
    assert [p.id for p in store.list_partnerships(active=True)] == [second.id]
    assert [p.id for p in store.list_partnerships(active=False)] == ["p-first"]
    assert [p.id for p in store.list_partnerships(school_id="tw-p1")] == ["p-first"]
    assert len(store.list_partnerships(school_id="vn-p1", active=True)) == 1
    with pytest.raises(ImportRejected, match="another partnership's id"):
        store.add_partnerships([Partnership(id="p-first", school_a="tw-p2", school_b="my-p1", start_date=date.today())])


# --------------------------------------------------------------------------- meta, stats, clear


def test_meta_values(store: Store) -> None:
    assert store.get_meta("index_seq") is None
    assert store.get_meta("index_seq", "0") == "0"
    store.set_meta("index_seq", "5")
    store.set_meta("index_seq", "7")
    assert store.get_meta("index_seq") == "7"


def test_stats_counts_active_schools_and_partnerships(store: Store, make_school: MakeSchool) -> None:
    store.upsert_schools(
        [
            make_school(id="tw-s1", remoteness="remote"),
            make_school(id="tw-s2", levels=["junior_high"]),
            make_school(id="tw-s3", active=False),
            make_school(id="my-s1", country="MY"),
        ]
    )
    store.add_partnerships(
        [
            Partnership(school_a="tw-s1", school_b="my-s1", start_date=date(2024, 1, 1)),
            Partnership(school_a="tw-s2", school_b="my-s1", start_date=date(2022, 1, 1), end_date=date(2023, 1, 1)),
        ]
    )
    stats = store.stats()
    assert stats["schools"] == 4 and stats["active_schools"] == 3
    assert stats["schools_by_country"] == {"TW": 2, "MY": 1}
    assert stats["schools_by_level"] == {"primary": 2, "junior_high": 1}
    assert stats["schools_by_remoteness"] == {"ordinary": 2, "remote": 1}
    assert stats["partnerships"] == 2 and stats["active_partnerships"] == 1
    assert stats["active_partnerships_by_country_pair"] == {"MY-TW": 1}


def test_clear_deletes_everything_and_logs_deletes(store: Store, make_school: MakeSchool) -> None:
    store.upsert_schools([make_school(id="tw-x"), make_school(id="my-x", country="MY")])
    store.add_partnerships([Partnership(id="p-x", school_a="tw-x", school_b="my-x", start_date=date(2024, 1, 1))])
    seq = store.latest_change_seq()
    store.set_meta("kept", "yes")
    store.clear()
    assert store.count_schools(active=None) == 0 and len(store.list_partnerships()) == 0
    assert sorted((sid, op) for _, sid, op in school_changes(store, seq)) == [("my-x", "delete"), ("tw-x", "delete")]
    assert [(pid, op) for _, pid, op in partnership_changes(store, seq)] == [("p-x", "delete")]
    assert store.get_meta("kept") == "yes"
    assert store.latest_change_seq() > seq, "seq keeps growing after a clear"


# --------------------------------------------------------------------------- concurrency


def test_concurrent_writers_and_readers_lose_nothing(store: Store, store_url: str, make_school: MakeSchool) -> None:
    """Two Store objects on one database, four writer threads, two reader threads, and a change
    follower that must see every create exactly once even while writes are still committing."""
    other = Store(store_url)
    stores = [store, other]
    per_thread = 15
    plans = [[make_school(id=f"w{t}-{i:02d}") for i in range(per_thread)] for t in range(4)]
    errors: list[BaseException] = []
    done = threading.Event()
    seen_changes: list[tuple[int, str, str]] = []

    def write(thread: int) -> None:
        target = stores[thread % 2]
        schools = plans[thread]
        try:
            for school in schools[:10]:
                target.create_school(school)
            target.upsert_schools(schools[10:])
            target.update_school(schools[0].id, {"capacity": 7})
        except BaseException as exc:
            errors.append(exc)

    def read(thread: int) -> None:
        source = stores[thread % 2]
        last_count = 0
        try:
            while not done.is_set():
                listed = source.list_schools(limit=1000)
                assert len(listed) >= last_count, "a committed school vanished"
                last_count = len(listed)
                if listed:
                    assert source.get_school(listed[-1].id) is not None
        except BaseException as exc:
            errors.append(exc)

    def follow() -> None:
        seq = 0
        try:
            while True:
                finished = done.is_set()
                batch = school_changes(other, seq)
                seen_changes.extend(batch)
                if batch:
                    seq = batch[-1][0]
                if finished:
                    return
        except BaseException as exc:
            errors.append(exc)

    writers = [threading.Thread(target=write, args=(t,)) for t in range(4)]
    helpers = [threading.Thread(target=read, args=(t,)) for t in range(2)] + [threading.Thread(target=follow)]
    for thread in writers + helpers:
        thread.start()
    for thread in writers:
        thread.join()
    done.set()
    for thread in helpers:
        thread.join()
    other.close()

    assert errors == []
    expected = {s.id for plan in plans for s in plan}
    assert {s.id for s in store.iter_schools()} == expected
    assert all(store.get_school(plan[0].id).capacity == 7 for plan in plans)
    seqs = [seq for seq, _, _ in seen_changes]
    assert seqs == sorted(set(seqs)), "the follower saw every change once, in order"
    assert sorted(sid for _, sid, op in seen_changes if op == "create") == sorted(expected)
    assert len(seen_changes) == len(expected) + len(plans)


def test_ids_made_in_one_millisecond_still_sort_by_creation(store: Store) -> None:
    """Two rounds stored in the same millisecond listed in random order (a flaky failure on main)."""
    same_instant = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    jobs = [store.create_round_job(now=same_instant) for _ in range(20)]
    assert sorted(job.id for job in jobs) == [job.id for job in jobs]
    assert len({job.id for job in jobs}) == len(jobs)
