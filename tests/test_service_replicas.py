"""Two API replicas on one database (a PostgreSQL schema, and a SQLite file): a write through
either shows in the other's answers within a follower turn, because each follows the store's
change log; and what one replica shows damps the other's lists (shared exposure counts)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from data.schema import utcnow
from data.settings import StorageSettings
from embeddings import EmbeddingSettings
from matching.settings import MatchSettings
from service.app import create_app
from service.auth import Role, create_key
from service.settings import ServiceSettings
from service.state import ServiceState


def replica(data_dir: Path, cache_dir: Path, url: str, poll: float = 0, *, exposure: bool = True) -> ServiceState:
    """exposure=False: lists are not damped by what was shown (shared between the replicas too), so
    the two replicas' lists can be compared as they are."""
    match = MatchSettings(reference_date=date(2026, 3, 2))
    if not exposure:
        match = match.model_copy(update={"rebalance": match.rebalance.model_copy(update={"exposure_strength": 0.0})})
    return ServiceState.open(
        StorageSettings(data_dir=data_dir, database_url=url),
        ServiceSettings(change_poll_seconds=poll),
        embedding=EmbeddingSettings(show_progress=False),
        match=match,
        embedding_cache_dir=cache_dir,
    )


@pytest.fixture
def replicas(
    store_url: str, tmp_path: Path, embedding_cache_dir: Path, small_world: Any
) -> Iterator[tuple[TestClient, TestClient, dict[str, str]]]:
    first = replica(tmp_path / "a", embedding_cache_dir, store_url, exposure=False)
    first.store.upsert_schools(small_world.schools)
    first.store.upsert_partnerships(small_world.partnerships)
    first.start()
    second = replica(tmp_path / "b", embedding_cache_dir, store_url, exposure=False)
    second.start()
    headers = {"X-API-Key": create_key(first.store, Role.STAFF).key}
    with TestClient(create_app(first)) as a, TestClient(create_app(second)) as b:
        yield a, b, headers
    first.close()
    second.close()


def eventually(check: Callable[[], bool], what: str, seconds: float = 30) -> None:
    """Wait for the other replica's follower (it turns every 50 ms here)."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def suggested(client: TestClient, headers: dict[str, str], school_id: str, k: int = 10) -> list[str]:
    response = client.get(
        f"/v1/schools/{school_id}/suggestions", params={"k": k, "diversity": "false"}, headers=headers
    )
    assert response.status_code == 200, response.text
    return [s["school_id"] for s in response.json()["suggestions"]]


def test_writes_through_one_replica_show_in_the_other(
    replicas: tuple[TestClient, TestClient, dict[str, str]], small_world: Any
) -> None:
    a, b, headers = replicas
    partners = Counter(i for p in small_world.partnerships if p.active for i in (p.school_a, p.school_b))
    source = next(
        s.id
        for s in small_world.schools
        if s.country == "TW"
        and s.active
        and partners[s.id] + 3 <= s.capacity
        and len(suggested(b, headers, s.id)) == 10
    )
    top = suggested(b, headers, source)
    assert suggested(a, headers, source) == top, "both replicas start from the same state"

    # A profile edit through A: B stops suggesting the school.
    assert a.patch(f"/v1/schools/{top[0]}", json={"languages_exchange": ["ko"]}, headers=headers).status_code == 200
    eventually(lambda: top[0] not in suggested(b, headers, source), "B stops suggesting the edited school")

    # A partnership recorded through B: A stops suggesting the partner.
    made = b.post(
        "/v1/partnerships", json={"school_a": source, "school_b": top[1], "start_date": "2026-02-01"}, headers=headers
    )
    assert made.status_code == 201
    eventually(lambda: top[1] not in suggested(a, headers, source), "A stops suggesting the new partner")

    # A new school through B (with the first one's profile before the edit) is suggested by A.
    twin = next(s for s in small_world.schools if s.id == top[0]).model_dump(
        mode="json", exclude={"created_at", "updated_at"}
    ) | {"id": "twin-across-replicas"}
    assert b.post("/v1/schools", json=twin, headers=headers).status_code == 201
    eventually(lambda: "twin-across-replicas" in suggested(a, headers, source), "A suggests B's new school")

    # An invitation through A fills a school's last place for B's capacity rule.
    narrow = twin | {"id": "narrow-across-replicas", "capacity": 1}
    assert a.post("/v1/schools", json=narrow, headers=headers).status_code == 201
    eventually(lambda: "narrow-across-replicas" in suggested(b, headers, source, k=20), "B suggests A's new school")
    sent = a.post(
        "/v1/invitations", json={"from_school": source, "to_school": "narrow-across-replicas"}, headers=headers
    )
    assert sent.status_code == 201, sent.text
    eventually(
        lambda: "narrow-across-replicas" not in suggested(b, headers, source, k=50), "its one place is held in B too"
    )


def test_a_slow_poll_still_sees_its_own_writes_at_once(
    store_url: str, tmp_path: Path, embedding_cache_dir: Path, small_world: Any
) -> None:
    """Polling for other replicas' changes can be rare; a replica's own writes apply at once."""
    state = replica(tmp_path, embedding_cache_dir, store_url, poll=3600)
    state.store.upsert_schools(small_world.schools)
    state.start()
    headers = {"X-API-Key": create_key(state.store, Role.STAFF).key}
    with TestClient(create_app(state)) as client:
        source = next(s.id for s in small_world.schools if s.country == "TW" and s.active)
        top = suggested(client, headers, source)[0]
        assert client.patch(f"/v1/schools/{top}", json={"active": False}, headers=headers).status_code == 200
        assert top not in suggested(client, headers, source)
        # A write by someone else is not seen before the next poll...
        state.store.create_invitation(source, top, None, expires_at=utcnow() + timedelta(days=1))
        with state.reading() as matcher:
            assert matcher.pending.get(top, 0) == 0
        # ...until a sync is due (or forced, as every write of this replica does).
        state.catch_up()
        with state.reading() as matcher:
            assert matcher.pending[top] == 1
    state.close()


def test_what_one_replica_shows_damps_the_others_lists(
    store_url: str, tmp_path: Path, embedding_cache_dir: Path, small_world: Any
) -> None:
    """Exposure counts live in the store: a list shown again and again through A is damped in B."""
    first = replica(tmp_path / "a", embedding_cache_dir, store_url, poll=3600)  # the test turns by hand
    first.store.upsert_schools(small_world.schools)
    first.store.upsert_partnerships(small_world.partnerships)
    first.start()
    second = replica(tmp_path / "b", embedding_cache_dir, store_url, poll=3600)
    second.start()
    headers = {"X-API-Key": create_key(first.store, Role.STAFF).key}
    with TestClient(create_app(first)) as a, TestClient(create_app(second)) as b:
        source = next(
            s.id
            for s in small_world.schools
            if s.country == "TW" and s.active and len(suggested(b, headers, s.id)) == 10
        )

        def damping(client: TestClient) -> dict[str, float]:
            response = client.get(f"/v1/schools/{source}/suggestions", params={"diversity": "false"}, headers=headers)
            return {s["school_id"]: s["adjustments"].get("exposure", 1.0) for s in response.json()["suggestions"]}

        def seen_by(state: ServiceState, school_id: str) -> float:
            with state.reading() as matcher:
                assert matcher.exposure is not None
                return matcher.exposure.count(school_id)

        shown = suggested(a, headers, source)
        for _ in range(30):
            suggested(a, headers, source)
        assert all(seen_by(second, school) < 5 for school in shown), "B does not know yet"
        assert max(seen_by(first, school) for school in shown) > 10

        before = damping(b)
        first.share_exposure()  # what each follower does every turn
        second.share_exposure()
        assert all(seen_by(second, school) >= seen_by(first, school) - 0.01 for school in shown), "B counts A's"
        after = damping(b)
        assert min(after.values()) < min(before.values()) - 0.1, (before, after)
    first.close()
    second.close()
