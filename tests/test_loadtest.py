"""The load test script: a tiny real run against a server it starts, and its report."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from data.generator import generate_world
from data.settings import StorageSettings
from embeddings import EmbeddingSettings, HashedTextEmbedder, ProfileEmbedder, RecipeMismatch, make_embedder
from evaluation.loadtest import format_result, main, run_load, server_histogram, summarise
from service.app import create_app
from service.auth import Role, create_key
from service.settings import ServiceSettings
from service.state import ServiceState
from tests.serving import UvicornThread, load_world


def test_hashed_encoder_is_explicit_and_never_mixed_with_the_model(tmp_path: Path) -> None:
    schools = generate_world(40, seed=3).schools
    assert type(make_embedder(EmbeddingSettings(show_progress=False), tmp_path)) is ProfileEmbedder
    hashed = make_embedder(EmbeddingSettings(show_progress=False, text_encoder="hashed", rate=None), tmp_path)
    assert isinstance(hashed, HashedTextEmbedder)
    vectors = hashed.fit(schools).embed(schools)
    assert vectors.shape == (40, 384 + hashed.encoder.dim)  # type: ignore[union-attr]
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    # An index saved with hashed text must not be loaded by a model-text service, nor the reverse.
    with pytest.raises(RecipeMismatch, match="model_id"):
        ProfileEmbedder(EmbeddingSettings(show_progress=False), tmp_path).load_encoder_state(hashed.encoder_state())


def test_report_counts_every_non_200_and_says_when_a_target_is_missed() -> None:
    statuses = Counter({"200": 97, "503": 2, "ConnectError": 1})
    result = summarise(
        [0.010] * 90 + [0.200] * 10,
        statuses,
        2.0,
        url="http://x",
        world=5000,
        clients=20,
        k=10,
        text_encoder="model",
        rate=None,
    )
    assert (result.requests, result.errors, result.throughput) == (100, 3, 50.0)
    text = format_result(result)
    assert "p99 <= 50 ms: MISSED" in text and ">= 150 req/s: MISSED" in text and "1 worker(s)" in text
    assert "503: 2" in text and "ConnectError: 1" in text and "same" in text
    fast = summarise(
        [0.005] * 1000,
        Counter({"200": 1000}),
        2.0,
        url="http://x",
        world=100_000,
        clients=20,
        k=10,
        text_encoder="hashed",
        rate=None,
    )
    assert "100,000-school world" in format_result(fast) and "p99 <= 100 ms: met" in format_result(fast)
    two = summarise(
        [0.005] * 1000,
        Counter({"200": 1000}),
        4.0,
        url="http://x",
        world=5000,
        clients=20,
        k=10,
        text_encoder="hashed",
        rate=None,
        workers=2,
        server_cpu_ms_per_request=3.5,
    )
    text = format_result(two)
    assert "2 worker(s)" in text and ">= 300 req/s: MISSED (250.0 req/s)" in text
    assert "server CPU <= 3 ms/request: MISSED (3.5 ms)" in text


@pytest.mark.slow
def test_tiny_run_against_a_server_it_starts(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    [result] = main(
        [
            "--world",
            "60",
            "--text-encoder",
            "hashed",
            "--clients",
            "2",
            "--requests",
            "30",
            "--warmup",
            "4",
            "--data-dir",
            str(tmp_path / "world"),
            "--json",
            str(out),
        ]
    )
    assert result.requests == 30 and result.errors == 0 and result.status_counts == {"200": 30}
    assert result.world == 60 and result.throughput > 0 and 0 < result.p50_ms <= result.p99_ms
    assert result.server_rss_mb is not None and result.server_rss_mb > 50
    assert json.loads(out.read_text())[0]["p99_ms"] == result.p99_ms and result.workers == 1
    assert result.server_cpu_ms_per_request is not None and result.server_cpu_ms_per_request > 0
    assert "index built" in (tmp_path / "world" / "server-1.log").read_text()


def test_the_client_reads_whole_answers_and_counts_refusals_and_failures(
    tmp_path: Path, embedding_cache_dir: Path, small_world: Any
) -> None:
    """The load generator's own HTTP client against the app on uvicorn: every answer is read
    whole (the server logs and counts each one), a wrong key is counted as 401, and a server that
    is gone as a connection error, never as a success."""
    state = ServiceState.open(
        StorageSettings(data_dir=tmp_path),
        ServiceSettings(change_poll_seconds=3600),
        embedding=EmbeddingSettings(show_progress=False),
        embedding_cache_dir=embedding_cache_dir,
    )
    load_world(state, small_world)
    key = create_key(state.store, Role.PORTAL).key
    ids = [school.id for school in small_world.schools if school.active][:20]
    server = UvicornThread.start(create_app(state))
    try:
        load = {"clients": 3, "k": 5, "seed": 1, "duration": None, "warmup": 2}
        latencies, statuses, _, _ = run_load(server.base, key, ids, requests=24, **load)
        assert statuses == Counter({"200": 24}) and len(latencies) == 24
        served = server_histogram(server.base)
        assert served["count"] >= 24 + 2  # every measured and warm-up request reached the route
        _, refused, _, _ = run_load(server.base, "pm_not-a-key", ids, requests=6, **load)
        assert refused == Counter({"401": 6})
    finally:
        server.stop()
        state.close()
    _, gone, _, _ = run_load(server.base, key, ids, requests=4, **load)
    assert set(gone) == {"ConnectionRefusedError"} and gone.total() == 4
