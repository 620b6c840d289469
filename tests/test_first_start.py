"""A first start answers at once: while the profiles are encoded in the background (the real model,
an empty embedding cache), /readyz says 503 with how many of how many are encoded, every API route
answers 503 with the same words, and the staff page shows "indexing 1,234 / 5,000" in its language;
once the index is ready everything answers as usual."""

from __future__ import annotations

import re
import time
from datetime import date
from pathlib import Path

from fastapi.testclient import TestClient

from data.generator import generate_world
from data.settings import StorageSettings
from embeddings import EmbeddingSettings
from matching.settings import MatchSettings
from service.app import create_app
from service.auth import Role, create_key
from service.settings import ServiceSettings
from service.state import ServiceState

SCHOOLS = 80


def test_the_server_answers_while_the_first_start_encodes(tmp_path: Path) -> None:
    world = generate_world(SCHOOLS, seed=23)
    state = ServiceState.open(
        StorageSettings(data_dir=tmp_path),
        ServiceSettings(change_poll_seconds=0),
        # small batches, so the count moves visibly; a cache of its own, so every profile is encoded
        embedding=EmbeddingSettings(show_progress=False, batch_size=8),
        match=MatchSettings(reference_date=date(2026, 3, 2)),
        embedding_cache_dir=tmp_path / "fresh-cache",
    )
    state.store.upsert_schools(world.schools)
    key = create_key(state.store, Role.STAFF).key
    total = sum(1 for s in world.schools if s.active)
    seen: list[dict[str, object]] = []
    try:
        with TestClient(create_app(state)) as client:
            first = client.get("/readyz")
            assert first.status_code == 503 and first.headers["Retry-After"] == "5", first.text
            body = first.json()
            assert body["status"] in ("loading", "indexing") and body["field"] == "index"

            refused = client.get("/v1/schools", headers={"X-API-Key": key})
            assert refused.status_code == 503 and refused.json()["field"] == "index"
            assert refused.json()["detail"].startswith("index: still")

            signed_in = client.post("/staff/login", data={"key": key, "next": "/staff/search?q=x"})
            assert signed_in.url.path == "/staff/indexing" and signed_in.url.params["next"] == "/staff/search?q=x"
            assert '<meta http-equiv="refresh"' in signed_in.text
            chinese = client.get("/staff/indexing", params={"lang": "zh-TW"})
            deadline = time.monotonic() + 300
            while (now := client.get("/readyz")).status_code == 503:
                assert time.monotonic() < deadline, "the index was never ready"
                seen.append(now.json())
                time.sleep(0.2)
            assert now.json()["status"] == "ready" and sum(now.json()["indexed"].values()) == total

            indexing = [b for b in seen if b["status"] == "indexing"]
            assert indexing, f"no progress seen while encoding: {seen[:3]}"
            counts = [b["encoded"] for b in indexing]
            assert all(b["total"] == total for b in indexing) and counts == sorted(counts)
            assert 0 <= counts[0] <= counts[-1] <= total
            assert f"of {total:,} profiles encoded" in indexing[-1]["detail"]
            shown = re.sub(r"<[^>]+>", " ", signed_in.text)
            assert re.search(rf"Indexing: [\d,]+ / {total:,} school profiles encoded", shown), shown
            assert re.search(rf"建立索引中：已編碼 [\d,]+ / {total:,} 所學校", chinese.text), chinese.text

            assert client.get("/v1/schools", headers={"X-API-Key": key}).status_code == 200
            ready = client.get("/staff/indexing", params={"next": "/staff/search?q=x", "lang": "en"})
            assert ready.url.path == "/staff/search" and 'id="indexing"' not in ready.text
    finally:
        state.close()
