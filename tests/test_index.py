"""The FAISS index: exact and HNSW kinds answer alike, and removed schools never come back."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import faiss
import numpy as np
import pytest

from matching.index import (
    ExactIndex,
    HNSWIndex,
    IndexOptions,
    UnknownIdError,
    VectorIndex,
    create_index,
    load_index,
)

DIM = 32
KINDS = ["exact", "hnsw"]


def unit_vectors(n: int, seed: int, dim: int = DIM) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def school_ids(n: int, prefix: str = "s") -> list[str]:
    return [f"{prefix}{i:05d}" for i in range(n)]


def built(kind: str, n: int = 500, seed: int = 1, options: IndexOptions | None = None) -> VectorIndex:
    index = create_index(DIM, n, kind=kind, options=options)
    index.build(school_ids(n), unit_vectors(n, seed))
    return index


def result_ids(rows: list[list[tuple[str, float]]]) -> list[list[str]]:
    return [[id_ for id_, _ in row] for row in rows]


def test_exact_and_hnsw_agree_on_small_data() -> None:
    ids, vectors, queries = school_ids(2000), unit_vectors(2000, 1, dim=64), unit_vectors(100, 2, dim=64)
    exact, approx = create_index(64, 2000, kind="exact"), create_index(64, 2000, kind="hnsw")
    exact.build(ids, vectors)
    approx.build(ids, vectors)
    assert (exact.kind, approx.kind) == ("exact", "hnsw")
    truth, found = result_ids(exact.search(queries, 10)), result_ids(approx.search(queries, 10))
    recall = sum(len(set(t) & set(f)) for t, f in zip(truth, found, strict=True)) / 1000
    assert recall >= 0.99
    # The exact index ranks exactly like a brute-force scan, and scores are cosines.
    scores = queries @ vectors.T
    assert truth[0] == [ids[j] for j in np.argsort(-scores[0])[:10]]
    best_score = exact.search(queries[:1], 1)[0][0][1]
    assert best_score == pytest.approx(float(scores[0].max()), abs=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_search_is_batched_and_sorted(kind: str) -> None:
    index = built(kind)
    threads = faiss.omp_get_max_threads()
    rows = index.search(unit_vectors(7, 3), 5)  # a small batch runs on one thread, then restores the setting
    assert faiss.omp_get_max_threads() == threads
    assert len(rows) == 7
    for row in rows:
        assert len(row) == 5
        assert [s for _, s in row] == sorted((s for _, s in row), reverse=True)
    single = index.search(unit_vectors(7, 3)[0], 5)
    assert single == rows[:1]


@pytest.mark.parametrize("kind", KINDS)
def test_save_load_round_trip_returns_identical_results(kind: str, tmp_path: Path) -> None:
    index = built(kind)
    index.upsert(["s00003", "new-1"], unit_vectors(2, 9))
    index.remove(["s00010", "s00011"])
    index.metadata = {"encoder": {"model": "all-MiniLM-L6-v2", "structured_dim": 150}, "change_seq": 42}
    queries = unit_vectors(20, 4)
    index.save(tmp_path / "index")
    loaded = load_index(tmp_path / "index")
    assert type(loaded) is type(index)
    assert loaded.kind == kind and loaded.dim == DIM and loaded.options == index.options
    assert loaded.metadata == index.metadata
    assert loaded.ids() == index.ids() and len(loaded) == len(index) == 499
    assert loaded.search(queries, 25) == index.search(queries, 25)
    np.testing.assert_array_equal(loaded.vector("new-1"), index.vector("new-1"))
    tuned = load_index(tmp_path / "index", options=IndexOptions(hnsw_ef_search=256))
    assert tuned.options.hnsw_ef_search == 256 and tuned.search(queries, 5) == index.search(queries, 5)


def test_save_replaces_an_earlier_save(tmp_path: Path) -> None:
    built("exact", n=50).save(tmp_path / "index")
    second = built("hnsw", n=80)
    second.save(tmp_path / "index")
    assert load_index(tmp_path / "index").kind == "hnsw"
    assert len(load_index(tmp_path / "index")) == 80
    assert [p.name for p in tmp_path.iterdir()] == ["index"]


@pytest.mark.parametrize("kind", KINDS)
def test_vectors_reads_many_rows_at_once(kind: str) -> None:
    index = built(kind)
    index.upsert(["s00007"], unit_vectors(1, 99))
    index.remove(["s00003"])
    wanted = ["s00010", "s00007", "s00499"]
    np.testing.assert_allclose(index.vectors(wanted), np.stack([index.vector(i) for i in wanted]), atol=1e-6)
    np.testing.assert_allclose(index.vectors(["s00007"])[0], unit_vectors(1, 99)[0], atol=1e-6)
    assert index.vectors([]).shape == (0, DIM)
    with pytest.raises(UnknownIdError):
        index.vectors(["s00010", "s00003"])


@pytest.mark.parametrize("kind", KINDS)
def test_stored_views_every_row_in_place(kind: str) -> None:
    index = built(kind)
    index.upsert(["s00007"], unit_vectors(1, 99))
    index.remove(["s00003"])
    labels, vectors = index.stored()
    held = {label: id_ for id_, label in index.labels().items()}
    assert len(labels) == len(vectors) and set(held) <= set(labels.tolist())
    for label, vector in zip(labels.tolist(), vectors, strict=True):
        if label in held:
            np.testing.assert_allclose(vector, index.vector(held[label]), atol=1e-6)
    assert not vectors.flags.writeable and not vectors.flags.owndata  # a view of FAISS's memory, not a copy


@pytest.mark.parametrize("kind", KINDS)
def test_upsert_replaces_a_vector(kind: str) -> None:
    index = built(kind)
    old = index.vector("s00042")
    target = unit_vectors(1, 77)
    index.upsert(["s00042"], target)
    assert len(index) == 500
    np.testing.assert_allclose(index.vector("s00042"), target[0], atol=1e-6)
    best_id, best_score = index.search(target, 1)[0][0]
    assert best_id == "s00042" and best_score == pytest.approx(1.0, abs=1e-5)
    # Its old position no longer finds it, nor does it appear twice anywhere.
    assert "s00042" not in [i for i, _ in index.search(old[None, :], 3)[0]]
    everything = result_ids(index.search(target, 500))[0]
    assert len(everything) == len(set(everything)) == 500


@pytest.mark.parametrize("kind", KINDS)
def test_removed_ids_never_come_back(kind: str, tmp_path: Path) -> None:
    index = built(kind, options=IndexOptions(rebuild_tombstone_fraction=1.0))
    removed = school_ids(40)
    own_vectors = np.stack([index.vector(i) for i in removed])
    index.remove(removed)
    assert all(i not in index for i in removed) and len(index) == 460

    def returned() -> set[str]:
        return {i for row in result_ids(index.search(own_vectors, 460)) for i in row}

    assert returned().isdisjoint(removed) and len(returned()) == 460
    index.upsert(["s00100", "s00101", "brand-new"], unit_vectors(3, 5))
    assert returned().isdisjoint(removed)
    index.save(tmp_path / "index")
    index = load_index(tmp_path / "index")
    assert returned().isdisjoint(removed) and len(returned()) == 461
    with pytest.raises(UnknownIdError):
        index.vector(removed[0])


def test_hnsw_tombstones_then_rebuild_past_the_fraction() -> None:
    index = built("hnsw", options=IndexOptions(rebuild_tombstone_fraction=0.2))
    assert isinstance(index, HNSWIndex)
    index.upsert(school_ids(50), unit_vectors(50, 6))  # replacing leaves tombstones
    index.remove(school_ids(100)[50:])
    assert index.tombstones == 100 and len(index) == 450
    kept_vector = index.vector("s00200")
    index.remove(school_ids(120)[100:])  # 120 of 550 rows dead: past 20 %, rebuilt
    assert index.tombstones == 0 and len(index) == 430
    np.testing.assert_array_equal(index.vector("s00200"), kept_vector)
    assert index.search(kept_vector[None, :], 1)[0][0][0] == "s00200"
    returned = {i for row in result_ids(index.search(unit_vectors(5, 8), 430)) for i in row}
    assert returned.isdisjoint(school_ids(120)[50:])
    assert set(school_ids(50)) <= returned  # replaced ids survive the rebuild with their new vectors
    index.upsert(index.ids()[:120], unit_vectors(120, 16))  # replacing alone also triggers it: 120 of 550 dead
    assert index.tombstones == 0 and len(index) == 430


@pytest.mark.parametrize("kind", KINDS)
def test_exclude_drops_ids_and_still_fills_k(kind: str) -> None:
    index = built(kind)
    query = unit_vectors(1, 11)
    top = result_ids(index.search(query, 10))[0]
    excluded = set(top[:5])
    rows = index.search(query, 10, exclude=excluded)[0]
    assert len(rows) == 10 and excluded.isdisjoint(i for i, _ in rows)
    assert [i for i, _ in rows][:5] == top[5:]


@pytest.mark.parametrize("kind", KINDS)
def test_refetch_returns_k_when_most_candidates_are_filtered(kind: str) -> None:
    index = built(kind, n=1000, options=IndexOptions(rebuild_tombstone_fraction=1.0))
    index.remove(school_ids(1000)[:300])  # tombstones for HNSW, real deletions for exact
    queries = unit_vectors(4, 12)
    excluded = set(school_ids(1000)[300:900])
    rows = index.search(queries, 20, overfetch=1.0, exclude=excluded)
    allowed = set(school_ids(1000)[900:])
    for row, query in zip(rows, queries, strict=True):
        assert len(row) == 20 and {i for i, _ in row} <= allowed
        if kind == "exact":  # exactly the 20 best of the 100 allowed
            scores = {i: float(index.vector(i) @ query) for i in allowed}
            assert [i for i, _ in row] == sorted(scores, key=scores.__getitem__, reverse=True)[:20]
    # Asking for more than remains returns what remains.
    assert all(len(row) == 100 for row in index.search(queries, 150, exclude=excluded))


def test_auto_kind_switches_at_the_threshold() -> None:
    assert create_index(DIM, 20_000).kind == "exact"
    assert create_index(DIM, 20_001).kind == "hnsw"
    small_threshold = IndexOptions(exact_max_size=100)
    assert isinstance(create_index(DIM, 100, options=small_threshold), ExactIndex)
    assert isinstance(create_index(DIM, 101, options=small_threshold), HNSWIndex)
    assert create_index(DIM, 10**6, kind="exact").kind == "exact"
    assert create_index(DIM, 10, kind="hnsw").kind == "hnsw"


@pytest.mark.parametrize("kind", KINDS)
def test_ids_are_stable(kind: str, tmp_path: Path) -> None:
    index = built(kind, n=20)
    vectors = unit_vectors(20, 1)
    assert index.ids() == school_ids(20)
    index.upsert(["s00005", "late"], unit_vectors(2, 13))
    index.remove(["s00007"])
    expected = sorted(set(school_ids(20)) - {"s00007"} | {"late"})
    assert sorted(index.ids()) == expected
    for id_ in ("s00000", "s00019"):  # untouched rows keep their vectors
        np.testing.assert_array_equal(index.vector(id_), vectors[int(id_[1:])])
    index.save(tmp_path / "index")
    loaded = load_index(tmp_path / "index")
    assert loaded.ids() == index.ids()
    assert all(np.array_equal(loaded.vector(i), index.vector(i)) for i in expected)


def test_copy_is_independent() -> None:
    index = built("hnsw", n=100)
    index.metadata = {"change_seq": 1}
    aside = index.copy()
    aside.remove(["s00001"])
    aside.upsert(["s00002"], unit_vectors(1, 14))
    aside.metadata["change_seq"] = 2
    assert "s00001" in index and "s00001" not in aside
    assert not np.array_equal(index.vector("s00002"), aside.vector("s00002"))
    assert index.metadata == {"change_seq": 1}


@pytest.mark.parametrize("kind", KINDS)
def test_concurrent_searches_match_sequential(kind: str) -> None:
    index = built(kind, n=2000)
    queries = unit_vectors(64, 15)
    expected = [index.search(q, 10) for q in queries]
    with ThreadPoolExecutor(max_workers=4) as pool:
        assert list(pool.map(lambda q: index.search(q, 10), queries)) == expected


def test_empty_index_searches_to_nothing() -> None:
    index = create_index(DIM, 0)
    index.build([], np.empty((0, DIM), np.float32))
    assert len(index) == 0 and index.search(unit_vectors(3, 1), 5) == [[], [], []]


def test_errors_name_the_field_and_reason(tmp_path: Path) -> None:
    index = built("exact", n=10)
    with pytest.raises(ValueError, match=f"vectors: expected dimension {DIM}, got 16"):
        index.upsert(["x"], unit_vectors(1, 1, dim=16))
    with pytest.raises(ValueError, match=f"queries: expected dimension {DIM}, got 8"):
        index.search(unit_vectors(1, 1, dim=8), 3)
    with pytest.raises(UnknownIdError, match="'ghost'") as caught:
        index.remove(["s00001", "ghost"])
    assert caught.value.missing == ["ghost"] and "s00001" in index  # nothing was removed
    with pytest.raises(ValueError, match="ids: expected a list of ids, got the single string 's00001'"):
        index.remove("s00001")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="vectors: 1 rows for 2 ids"):
        index.upsert(["a", "b"], unit_vectors(1, 1))
    with pytest.raises(ValueError, match="ids: repeated in one call: \\['a'\\]"):
        index.upsert(["a", "a"], unit_vectors(2, 1))
    with pytest.raises(ValueError, match=r"vectors: rows must be L2-normalised.*row 0 has norm 2\.0000"):
        index.upsert(["a"], 2 * unit_vectors(1, 1))
    with pytest.raises(ValueError, match="vectors: contains NaN"):
        index.upsert(["a"], np.full((1, DIM), np.nan, np.float32))
    with pytest.raises(ValueError, match="k: must be a positive integer"):
        index.search(unit_vectors(1, 1), 0)
    with pytest.raises(ValueError, match="overfetch: must be at least 1"):
        index.search(unit_vectors(1, 1), 3, overfetch=0.5)
    with pytest.raises(ValueError, match="kind: must be one of auto, exact, hnsw; got 'ivf'"):
        create_index(DIM, 10, kind="ivf")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rebuild_tombstone_fraction: must be in \\(0, 1\\]"):
        IndexOptions(rebuild_tombstone_fraction=0)
    with pytest.raises(ValueError, match="metadata: not JSON-serialisable"):
        index.metadata = {"when": object()}
        index.save(tmp_path / "index")
    with pytest.raises(FileNotFoundError, match="holds no saved index"):
        load_index(tmp_path / "nothing-here")
    index.metadata = {}
    index.save(tmp_path / "index")
    sidecar = json.loads((tmp_path / "index" / "index.json").read_text())
    sidecar["ids"], sidecar["labels"] = sidecar["ids"][:-1], sidecar["labels"][:-1]
    (tmp_path / "index" / "index.json").write_text(json.dumps(sidecar))
    with pytest.raises(ValueError, match="inconsistent: FAISS file has 10 rows of dimension 32, sidecar expects 9"):
        load_index(tmp_path / "index")
