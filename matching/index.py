"""Nearest-neighbour search over school profile vectors: string ids and vectors in, ranked ids out.

Two kinds with the same verbs (build, upsert, remove, search, save, vector), chosen by size:

* ``ExactIndex`` (``IndexIDMap2`` around ``IndexFlatIP``): exact inner product. Below a few tens of
  thousands of profiles a full scan costs a few milliseconds and never misses a neighbour.
* ``HNSWIndex`` (``IndexHNSWFlat``, inner product): sub-millisecond approximate search for large
  catalogues. HNSW cannot delete, so removed and replaced rows become tombstones that search
  skips, and the graph is rebuilt from the live rows once tombstones pass a fraction of it.

Vectors must be L2-normalised float32, so inner product is cosine similarity. Removed ids never
come back from search, whichever kind holds them.

Thread safety: ``search``, ``vector``, ``ids``, ``len`` and ``in`` only read, and may run
concurrently with each other (FAISS releases the GIL while searching). ``build``, ``upsert``,
``remove``, ``compact`` and ``save`` must be serialised, and must not overlap a search on the same
object: apply writes to a ``copy()`` (or a freshly built or loaded index) and swap the reference
that readers use once the writes are done.

This module imports only numpy, faiss and the standard library, so it can be tested and
benchmarked without the rest of partnermatch. The caller maps its own settings onto
:class:`IndexOptions`.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import faiss
import numpy as np

FORMAT_VERSION = 1
FAISS_FILE = "vectors.faiss"
SIDECAR_FILE = "index.json"
NORM_TOLERANCE = 1e-3

IndexKind = Literal["auto", "exact", "hnsw"]


class UnknownIdError(KeyError):
    """An id the index does not hold (never added, or already removed)."""

    def __init__(self, missing: Sequence[str]) -> None:
        self.missing = list(missing)
        shown = ", ".join(repr(i) for i in self.missing[:10])
        more = f" and {len(self.missing) - 10} more" if len(self.missing) > 10 else ""
        super().__init__(f"ids: not in the index: {shown}{more}")

    def __str__(self) -> str:
        return self.args[0]


@dataclass(frozen=True)
class IndexOptions:
    """Size threshold and HNSW parameters.

    At 100k profile-like vectors of dimension 642, M=32, efConstruction=40 and efSearch=128 give
    recall@50 ~0.99 against exact search at ~0.5 ms per query (``evaluation/bench_index.py``).
    On flatter, noisier clouds recall drops (~0.9 at efSearch 128): raise ``hnsw_ef_search``.
    ``search`` uses max(hnsw_ef_search, candidates fetched), so deep fetches stay accurate.
    """

    exact_max_size: int = 20_000
    hnsw_m: int = 32
    hnsw_ef_construction: int = 40
    hnsw_ef_search: int = 128
    rebuild_tombstone_fraction: float = 0.2
    # Batches of fewer queries run FAISS on one thread: for a single query, OpenMP threads spinning
    # on a busy machine (or beside concurrent searches) cost far more than they save (10k exact
    # scan on 2 shared cores: 10.8 ms with 2 threads, 1.6 ms with 1).
    parallel_min_queries: int = 16

    def __post_init__(self) -> None:
        for name in ("exact_max_size", "hnsw_m", "hnsw_ef_construction", "hnsw_ef_search", "parallel_min_queries"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: must be a positive integer, got {value!r}")
        if not 0 < self.rebuild_tombstone_fraction <= 1:
            raise ValueError(f"rebuild_tombstone_fraction: must be in (0, 1], got {self.rebuild_tombstone_fraction!r}")


@dataclass
class _Bookkeeping:
    """Which FAISS label (int64) holds which school id, both ways."""

    label_of: dict[str, int] = field(default_factory=dict)
    id_of: dict[int, str] = field(default_factory=dict)
    next_label: int = 0


class VectorIndex(ABC):
    """What both kinds share: id bookkeeping, validation, filtered search, persistence."""

    kind: ClassVar[str]

    def __init__(self, dim: int, options: IndexOptions | None = None) -> None:
        if not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim: must be a positive integer, got {dim!r}")
        self.dim = dim
        self.options = options or IndexOptions()
        self.metadata: dict[str, Any] = {}
        self._book = _Bookkeeping()
        self._faiss = self._new_faiss()

    @classmethod
    def _assemble(
        cls, dim: int, options: IndexOptions, metadata: dict[str, Any], book: _Bookkeeping, faiss_index: faiss.Index
    ) -> VectorIndex:
        """An index around existing state (a copy, or what load read from disk)."""
        index = cls.__new__(cls)
        index.dim, index.options, index.metadata, index._book, index._faiss = dim, options, metadata, book, faiss_index
        return index

    # --- kind-specific parts -------------------------------------------------------------

    @abstractmethod
    def _new_faiss(self) -> faiss.Index:
        """An empty FAISS index of this kind."""

    @abstractmethod
    def _add_to_faiss(self, labels: np.ndarray, vectors: np.ndarray) -> None:
        """Store rows under labels the bookkeeping just assigned."""

    @abstractmethod
    def _replace_rows(self, ids: list[str], vectors: np.ndarray) -> None:
        """Upsert rows whose ids and vectors were validated."""

    @abstractmethod
    def _drop_rows(self, labels: np.ndarray) -> None:
        """Forget rows whose labels the bookkeeping already dropped."""

    def _faiss_search(self, queries: np.ndarray, fetch: int) -> tuple[np.ndarray, np.ndarray]:
        return self._faiss.search(queries, fetch)

    # --- writers -------------------------------------------------------------------------

    def build(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        """Replace the whole content with these rows."""
        ids = self._check_ids(ids)
        vectors = self._check_vectors(vectors, "vectors", expected_rows=len(ids))
        self._faiss = self._new_faiss()
        self._book = _Bookkeeping()
        self._append(ids, vectors)

    def upsert(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        """Add new ids and replace the vectors of ids already present."""
        ids = self._check_ids(ids)
        vectors = self._check_vectors(vectors, "vectors", expected_rows=len(ids))
        if ids:
            self._replace_rows(ids, vectors)

    def remove(self, ids: Iterable[str]) -> None:
        """Remove ids for good; all must be present, or nothing is removed."""
        if isinstance(ids, str):
            raise ValueError(f"ids: expected a list of ids, got the single string {ids!r}")
        ids = list(dict.fromkeys(ids))
        missing = [i for i in ids if i not in self._book.label_of]
        if missing:
            raise UnknownIdError(missing)
        if not ids:
            return
        labels = np.fromiter((self._book.label_of.pop(i) for i in ids), dtype=np.int64, count=len(ids))
        for label in labels.tolist():
            del self._book.id_of[label]
        self._drop_rows(labels)

    def copy(self) -> VectorIndex:
        """An independent copy to apply writes to while readers keep searching this one."""
        book = _Bookkeeping(dict(self._book.label_of), dict(self._book.id_of), self._book.next_label)
        metadata = json.loads(json.dumps(self.metadata))
        return self._assemble(self.dim, self.options, metadata, book, faiss.clone_index(self._faiss))

    # --- readers -------------------------------------------------------------------------

    def search(
        self,
        queries: np.ndarray,
        k: int,
        *,
        overfetch: float = 1.0,
        exclude: set[str] | None = None,
    ) -> list[list[tuple[str, float]]]:
        """Up to ``k`` (id, cosine) pairs per query row, best first, never a removed or excluded id.

        Fetches ``k * overfetch`` candidates (plus room for excluded and tombstoned rows) and, for
        queries that filtering left short while the index holds more, searches again with twice
        as many until they have ``k`` or the index is exhausted.
        """
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"k: must be a positive integer, got {k!r}")
        if not overfetch >= 1:
            raise ValueError(f"overfetch: must be at least 1, got {overfetch!r}")
        queries = self._check_vectors(np.atleast_2d(queries), "queries")
        exclude = exclude or set()
        results: list[list[tuple[str, float]]] = [[] for _ in range(len(queries))]
        stored = self._faiss.ntotal
        if stored == 0 or len(queries) == 0:
            return results
        dead_ratio = stored / max(len(self), 1)
        fetch = min(stored, math.ceil(k * overfetch * dead_ratio) + len(exclude))
        pending = np.arange(len(queries))
        id_of = self._book.id_of
        while len(pending):
            with _omp_threads(1 if len(pending) < self.options.parallel_min_queries else None):
                scores, labels = self._faiss_search(queries[pending], fetch)
            short = []
            for row, query in enumerate(pending.tolist()):
                hits = [
                    (id_of[label], float(score))
                    for score, label in zip(scores[row].tolist(), labels[row].tolist(), strict=True)
                    if label in id_of and id_of[label] not in exclude
                ]
                results[query] = hits[:k]
                exhausted = fetch >= stored or labels[row, -1] < 0
                if len(hits) < k and not exhausted:
                    short.append(query)
            pending = np.asarray(short, dtype=np.int64)
            fetch = min(stored, fetch * 2)
        return results

    def labels(self) -> dict[str, int]:
        """Each id's FAISS label: the positions an eligibility mask for :meth:`search_allowed` sets."""
        return dict(self._book.label_of)

    def label(self, id_: str) -> int:
        """One id's FAISS label."""
        if id_ not in self._book.label_of:
            raise UnknownIdError([id_])
        return self._book.label_of[id_]

    def label_space(self) -> int:
        """Labels handed out so far (a bitmap over labels needs this many bits)."""
        return self._book.next_label

    def search_allowed(
        self, query: np.ndarray, k: int, mask: np.ndarray, allowed: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest rows among the labels ``mask`` sets (a boolean mask over the labels, at
        most :meth:`label_space` long, ``allowed`` of them set), as (cosines, labels), best first.

        FAISS skips every other row while it searches (``IDSelectorBitmap``), so every hit is
        allowed and no refetch is needed, however few rows are. Returns fewer than ``k`` only when
        fewer are allowed (or, on HNSW, when the graph cannot reach more of them)."""
        if allowed == 0 or k < 1:
            return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)
        size = self.label_space()
        if len(mask) < size:
            mask = np.concatenate([mask, np.zeros(size - len(mask), dtype=bool)])
        packed = np.packbits(mask, bitorder="little")  # kept alive here while FAISS reads it
        selector = faiss.IDSelectorBitmap(len(mask), faiss.swig_ptr(packed))
        k = min(k, allowed)
        with _omp_threads(1):
            scores, labels = self._faiss.search(
                self._check_vectors(np.atleast_2d(query), "queries"), k, params=self._search_parameters(selector, k)
            )
        found = labels[0] >= 0
        return scores[0][found], labels[0][found]

    def stored(self) -> tuple[np.ndarray, np.ndarray]:
        """(label, vector) of every row FAISS stores, tombstones included (a label no id holds), as
        read-only views of FAISS's own memory: a full scan reads them without copying 100k vectors.
        Valid while this index object lives and is not written to."""
        flat = faiss.downcast_index(self._faiss.storage if self.kind == "hnsw" else self._faiss.index)
        vectors = faiss.rev_swig_ptr(flat.get_xb(), flat.ntotal * self.dim).reshape(flat.ntotal, self.dim)
        vectors.flags.writeable = False
        labels = np.arange(flat.ntotal) if self.kind == "hnsw" else faiss.vector_to_array(self._faiss.id_map)
        return labels, vectors

    def vectors_at(self, labels: np.ndarray) -> np.ndarray:
        """The stored vectors of rows given by label, in one FAISS call."""
        if len(labels) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self._faiss.reconstruct_batch(np.asarray(labels, dtype=np.int64))

    def _search_parameters(self, selector: faiss.IDSelector, k: int) -> faiss.SearchParameters:
        return faiss.SearchParameters(sel=selector)

    def vector(self, id_: str) -> np.ndarray:
        """The stored vector of one id (a copy)."""
        if id_ not in self._book.label_of:
            raise UnknownIdError([id_])
        return self._faiss.reconstruct(self._book.label_of[id_])

    def vectors(self, ids: Sequence[str]) -> np.ndarray:
        """The stored vectors of several ids, one row each, in one FAISS call.

        One call instead of one per id matters under concurrency: each FAISS call releases the
        GIL and must win it back, which with busy request threads costs far more than the copy."""
        missing = [i for i in ids if i not in self._book.label_of]
        if missing:
            raise UnknownIdError(missing)
        if not ids:
            return np.zeros((0, self.dim), dtype=np.float32)
        labels = np.fromiter((self._book.label_of[i] for i in ids), dtype=np.int64, count=len(ids))
        return self._faiss.reconstruct_batch(labels)

    def ids(self) -> list[str]:
        return list(self._book.label_of)

    def __len__(self) -> int:
        return len(self._book.label_of)

    def __contains__(self, id_: object) -> bool:
        return id_ in self._book.label_of

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dim={self.dim}, size={len(self)})"

    # --- persistence ---------------------------------------------------------------------

    def save(self, path: Path) -> None:
        """Write the index into folder ``path``, replacing what was there only once all is written.

        ``metadata`` (JSON-serialisable) is saved with it, so the caller can record e.g. the
        encoder state and the change sequence the index reflects.
        """
        path = Path(path)
        try:
            sidecar = json.dumps(self._sidecar(), ensure_ascii=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"metadata: not JSON-serialisable ({exc})") from None
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = path.with_name(f".{path.name}.saving-{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        faiss.write_index(self._faiss, str(staging / FAISS_FILE))
        (staging / SIDECAR_FILE).write_text(sidecar, encoding="utf-8")
        retired = path.with_name(f".{path.name}.old-{os.getpid()}")
        if path.exists():
            path.rename(retired)
        staging.rename(path)
        shutil.rmtree(retired, ignore_errors=True)

    def _sidecar(self) -> dict[str, Any]:
        book = self._book
        return {
            "format": FORMAT_VERSION,
            "kind": self.kind,
            "dim": self.dim,
            "options": asdict(self.options),
            "next_label": book.next_label,
            "ids": list(book.label_of),
            "labels": list(book.label_of.values()),
            "tombstones": sorted(set(range(self._faiss.ntotal)) - set(book.id_of)) if self.kind == "hnsw" else [],
            "metadata": self.metadata,
        }

    # --- shared helpers ------------------------------------------------------------------

    def _append(self, ids: list[str], vectors: np.ndarray) -> None:
        """Give each id the next free label and record it; the kind adds the rows to FAISS."""
        start = self._book.next_label
        labels = np.arange(start, start + len(ids), dtype=np.int64)
        self._add_to_faiss(labels, vectors)
        for id_, label in zip(ids, labels.tolist(), strict=True):
            self._book.label_of[id_] = label
            self._book.id_of[label] = id_
        self._book.next_label = start + len(ids)

    def _check_ids(self, ids: Iterable[str]) -> list[str]:
        if isinstance(ids, str):
            raise ValueError(f"ids: expected a list of ids, got the single string {ids!r}")
        ids = list(ids)
        for id_ in ids:
            if not isinstance(id_, str) or not id_:
                raise ValueError(f"ids: each id must be a non-empty string, got {id_!r}")
        if len(set(ids)) != len(ids):
            repeated = sorted(id_ for id_, count in Counter(ids).items() if count > 1)
            raise ValueError(f"ids: repeated in one call: {repeated[:10]}")
        return ids

    def _check_vectors(self, vectors: np.ndarray, name: str, expected_rows: int | None = None) -> np.ndarray:
        vectors = np.asarray(vectors)
        if vectors.ndim != 2:
            raise ValueError(f"{name}: expected a 2-D array (rows, {self.dim}), got shape {vectors.shape}")
        if vectors.shape[1] != self.dim:
            raise ValueError(f"{name}: expected dimension {self.dim}, got {vectors.shape[1]}")
        if expected_rows is not None and vectors.shape[0] != expected_rows:
            raise ValueError(f"{name}: {vectors.shape[0]} rows for {expected_rows} ids")
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if len(vectors) == 0:
            return vectors
        if not np.isfinite(vectors).all():
            raise ValueError(f"{name}: contains NaN or infinite values")
        norms = np.linalg.norm(vectors, axis=1)
        bad = np.flatnonzero(np.abs(norms - 1.0) > NORM_TOLERANCE)
        if len(bad):
            raise ValueError(
                f"{name}: rows must be L2-normalised (inner product = cosine); row {int(bad[0])} has norm "
                f"{norms[bad[0]]:.4f} ({len(bad)} such rows)"
            )
        return vectors


class ExactIndex(VectorIndex):
    """Exact inner-product scan; a replaced id keeps its label, a removed one is truly deleted."""

    kind = "exact"

    def _new_faiss(self) -> faiss.Index:
        return faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))

    def _add_to_faiss(self, labels: np.ndarray, vectors: np.ndarray) -> None:
        self._faiss.add_with_ids(vectors, labels)

    def _replace_rows(self, ids: list[str], vectors: np.ndarray) -> None:
        present = [n for n, id_ in enumerate(ids) if id_ in self._book.label_of]
        fresh = [n for n, id_ in enumerate(ids) if id_ not in self._book.label_of]
        if present:
            labels = np.array([self._book.label_of[ids[n]] for n in present], dtype=np.int64)
            self._faiss.remove_ids(labels)
            self._faiss.add_with_ids(vectors[present], labels)
        if fresh:
            self._append([ids[n] for n in fresh], vectors[fresh])

    def _drop_rows(self, labels: np.ndarray) -> None:
        self._faiss.remove_ids(labels)


class HNSWIndex(VectorIndex):
    """Approximate search on an HNSW graph; a row's label is its position in the graph.

    Replacing or removing an id leaves a tombstone (its label maps to no id) that search skips;
    once tombstones exceed ``rebuild_tombstone_fraction`` of the rows, the graph is rebuilt from
    the live rows (this costs a full build: ~30 s at 100k, part of the write that triggers it).
    """

    kind = "hnsw"

    def _new_faiss(self) -> faiss.Index:
        index = faiss.IndexHNSWFlat(self.dim, self.options.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = self.options.hnsw_ef_construction
        index.hnsw.efSearch = self.options.hnsw_ef_search
        return index

    def _add_to_faiss(self, labels: np.ndarray, vectors: np.ndarray) -> None:
        self._faiss.add(vectors)

    def _faiss_search(self, queries: np.ndarray, fetch: int) -> tuple[np.ndarray, np.ndarray]:
        # Per-call parameters, not index.hnsw.efSearch: concurrent searches must not share state.
        params = faiss.SearchParametersHNSW()
        params.efSearch = max(self.options.hnsw_ef_search, fetch)
        return self._faiss.search(queries, fetch, params=params)

    def _search_parameters(self, selector: faiss.IDSelector, k: int) -> faiss.SearchParameters:
        return faiss.SearchParametersHNSW(sel=selector, efSearch=max(self.options.hnsw_ef_search, k))

    @property
    def tombstones(self) -> int:
        """Rows in the graph that no id owns any more."""
        return self._faiss.ntotal - len(self)

    def _replace_rows(self, ids: list[str], vectors: np.ndarray) -> None:
        for id_ in ids:
            if id_ in self._book.label_of:
                del self._book.id_of[self._book.label_of.pop(id_)]
        self._append(ids, vectors)
        self._compact_if_needed()

    def _drop_rows(self, labels: np.ndarray) -> None:
        self._compact_if_needed()

    def _compact_if_needed(self) -> None:
        if self.tombstones > self.options.rebuild_tombstone_fraction * self._faiss.ntotal:
            self.compact()

    def compact(self) -> None:
        """Rebuild the graph from the live rows, dropping every tombstone."""
        ids = list(self._book.label_of)
        labels = np.fromiter(self._book.label_of.values(), dtype=np.int64, count=len(ids))
        vectors = self._faiss.reconstruct_batch(labels) if len(ids) else np.empty((0, self.dim), np.float32)
        self._faiss = self._new_faiss()
        self._book = _Bookkeeping()
        self._append(ids, vectors)


@contextmanager
def _omp_threads(count: int | None) -> Iterator[None]:
    """Limit FAISS's OpenMP threads for this thread only (OpenMP keeps the setting per thread)."""
    if count is None:
        yield
        return
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(count)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(previous)


INDEX_KINDS: dict[str, type[VectorIndex]] = {"exact": ExactIndex, "hnsw": HNSWIndex}


def create_index(dim: int, size: int, kind: IndexKind = "auto", options: IndexOptions | None = None) -> VectorIndex:
    """An empty index of the kind that suits ``size`` rows: exact up to ``options.exact_max_size``, HNSW above."""
    options = options or IndexOptions()
    if kind == "auto":
        if not isinstance(size, int) or size < 0:
            raise ValueError(f"size: must be a non-negative integer, got {size!r}")
        kind = "exact" if size <= options.exact_max_size else "hnsw"
    if kind not in INDEX_KINDS:
        raise ValueError(f"kind: must be one of auto, {', '.join(INDEX_KINDS)}; got {kind!r}")
    return INDEX_KINDS[kind](dim, options)


def load_index(path: Path, options: IndexOptions | None = None) -> VectorIndex:
    """Read an index saved by ``VectorIndex.save``; ``options`` override the saved ones (e.g. efSearch)."""
    path = Path(path)
    sidecar_path = path / SIDECAR_FILE
    if not sidecar_path.is_file() or not (path / FAISS_FILE).is_file():
        raise FileNotFoundError(f"path: {path} holds no saved index ({SIDECAR_FILE} and {FAISS_FILE} expected)")
    sidecar = json.loads(sidecar_path.read_text(encoding="utf-8"))
    if sidecar.get("format") != FORMAT_VERSION:
        raise ValueError(f"format: {path} has format {sidecar.get('format')!r}, this code reads {FORMAT_VERSION}")
    kind = sidecar["kind"]
    if kind not in INDEX_KINDS:
        raise ValueError(f"kind: {path} holds unknown kind {kind!r}")
    ids, labels, dim = sidecar["ids"], sidecar["labels"], sidecar["dim"]
    book = _Bookkeeping(dict(zip(ids, labels, strict=True)), dict(zip(labels, ids, strict=True)), sidecar["next_label"])
    faiss_index = faiss.read_index(str(path / FAISS_FILE))
    expected_rows = len(ids) + len(sidecar["tombstones"])
    if faiss_index.d != dim or faiss_index.ntotal != expected_rows:
        raise ValueError(
            f"path: {path} is inconsistent: FAISS file has {faiss_index.ntotal} rows of dimension "
            f"{faiss_index.d}, sidecar expects {expected_rows} of dimension {dim}"
        )
    options = options or IndexOptions(**sidecar["options"])
    return INDEX_KINDS[kind]._assemble(dim, options, sidecar["metadata"], book, faiss_index)
