"""Text vectors on disk, so a restart re-encodes nothing and an edit re-encodes one profile.

A SQLite file (WAL, so readers in other processes are not blocked by a writer) maps
(model id, feature version, sha256 of the encoded text) to the float32 vector's bytes. Keying on
the text rather than the school means an edit that leaves the text unchanged costs nothing, and a
new model or feature version simply misses: old entries stay until ``prune`` drops them.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

CACHE_FILE = "text-vectors.sqlite3"
# SQLite's default limit on bound parameters is 32766; 2 go to the model and version.
_CHUNK = 30_000


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class EmbeddingCache:
    """Bulk get/put of text vectors keyed by (model id, feature version, text hash)."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / CACHE_FILE
        # One connection shared by the threads of an API worker; the lock serialises its use.
        self._connection = sqlite3.connect(self.path, check_same_thread=False)
        self._lock = threading.Lock()
        with self._lock, self._connection as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS text_vectors ("
                " model_id TEXT NOT NULL, feature_version TEXT NOT NULL, text_hash TEXT NOT NULL,"
                " vector BLOB NOT NULL, PRIMARY KEY (model_id, feature_version, text_hash)) WITHOUT ROWID"
            )

    def get_many(self, model_id: str, feature_version: str, hashes: Iterable[str]) -> dict[str, np.ndarray]:
        """The cached vectors among ``hashes``; missing ones are simply absent from the result."""
        wanted = list(dict.fromkeys(hashes))
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for start in range(0, len(wanted), _CHUNK):
                chunk = wanted[start : start + _CHUNK]
                rows = self._connection.execute(
                    "SELECT text_hash, vector FROM text_vectors WHERE model_id = ? AND feature_version = ?"
                    f" AND text_hash IN ({','.join('?' * len(chunk))})",
                    (model_id, feature_version, *chunk),
                )
                found.update((key, np.frombuffer(blob, dtype=np.float32)) for key, blob in rows)
        return found

    def put_many(self, model_id: str, feature_version: str, vectors: Mapping[str, np.ndarray]) -> None:
        rows = [
            (model_id, feature_version, key, np.ascontiguousarray(vector, dtype=np.float32).tobytes())
            for key, vector in vectors.items()
        ]
        with self._lock, self._connection as db:
            db.executemany("INSERT OR REPLACE INTO text_vectors VALUES (?, ?, ?, ?)", rows)

    def prune(self, keep: Sequence[tuple[str, str]]) -> int:
        """Drop entries of every (model id, feature version) not in ``keep``; returns how many went."""
        with self._lock, self._connection as db:
            kept = " AND ".join(["NOT (model_id = ? AND feature_version = ?)"] * len(keep)) or "1"
            cursor = db.execute(f"DELETE FROM text_vectors WHERE {kept}", [v for pair in keep for v in pair])
            return cursor.rowcount

    def __len__(self) -> int:
        with self._lock:
            return self._connection.execute("SELECT count(*) FROM text_vectors").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._connection.close()
