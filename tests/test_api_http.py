"""The main flow over real HTTP: uvicorn on a free loopback port, httpx as the client.

A new school is created, gets suggestions, invites the best one, which accepts; the partnership
is listed and the next suggestion list has changed. On shutdown the server saves its index at
the store's newest change, so the next start loads it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest

from data.settings import StorageSettings
from data.store import Store
from embeddings import EmbeddingSettings
from matching.engine import Matcher
from matching.settings import MatchSettings
from service.app import create_app
from service.auth import Role, create_key
from service.settings import ServiceSettings
from service.state import POINTER_FILE, ServiceState
from tests.serving import UvicornThread, load_world


@dataclass
class Served:
    base: str
    key: str
    state: ServiceState
    uvicorn: UvicornThread

    def stop(self) -> None:
        """Shut uvicorn down the way Ctrl-C does, then close the state as `partnermatch serve` does."""
        self.uvicorn.stop()
        self.state.close()


@pytest.fixture
def served(tmp_path: Path, embedding_cache_dir: Path, small_world: Any) -> Iterator[Served]:
    state = ServiceState.open(
        StorageSettings(data_dir=tmp_path),
        ServiceSettings(change_poll_seconds=1),
        embedding=EmbeddingSettings(show_progress=False),
        match=MatchSettings(reference_date=date(2026, 3, 2)),
        embedding_cache_dir=embedding_cache_dir,
    )
    load_world(state, small_world)
    key = create_key(state.store, Role.STAFF).key
    server = UvicornThread.start(create_app(state))
    served = Served(server.base, key, state, server)
    try:
        yield served
    finally:
        served.stop()


def test_create_suggest_invite_accept_over_http(served: Served, small_world: Any) -> None:
    model = next(s for s in small_world.schools if s.country == "TW" and s.active and s.capacity >= 3)
    profile = model.model_dump(mode="json", exclude={"created_at", "updated_at"}) | {"id": "tw-http-new"}

    with httpx.Client(base_url=served.base, headers={"X-API-Key": served.key}, timeout=60) as client:
        assert client.get("/readyz").json()["status"] == "ready"
        assert client.post("/v1/schools", json=profile).status_code == 201

        first = client.get("/v1/schools/tw-http-new/suggestions", params={"k": 5})
        assert first.status_code == 200
        before = [s["school_id"] for s in first.json()["suggestions"]]
        assert len(before) == 5, "a school created a moment ago already has suggestions"
        partner = before[0]

        sent = client.post("/v1/invitations", json={"from_school": "tw-http-new", "to_school": partner})
        assert sent.status_code == 201, sent.text
        accepted = client.post(f"/v1/invitations/{sent.json()['id']}/accept")
        assert accepted.status_code == 200, accepted.text
        partnership_id = accepted.json()["partnership"]["id"]

        listed = client.get("/v1/partnerships", params={"school_id": "tw-http-new"}).json()
        assert [p["id"] for p in listed] == [partnership_id]
        after = [
            s["school_id"]
            for s in client.get("/v1/schools/tw-http-new/suggestions", params={"k": 5}).json()["suggestions"]
        ]
        assert partner not in after and after != before

        metrics = client.get("/metrics").text
        assert 'route="/v1/invitations/{invitation_id}/accept",status="200"} 1.0' in metrics

    served.stop()
    snapshot = served.state.index_dir / (served.state.index_dir / POINTER_FILE).read_text(encoding="utf-8").strip()
    saved = Matcher.saved_metadata(snapshot)
    assert saved is not None
    with Store(served.state.store.url) as store:
        assert saved["change_seq"] == store.latest_change_seq(), "stopping saved the index at the newest change"
