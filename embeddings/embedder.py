"""ProfileEmbedder: School -> one L2-normalised float32 vector (text + structured blocks).

Vector layout: [sqrt(w_text) * text vector | weighted structured blocks], then scaled to unit
length, so inner product in FAISS is cosine and the weights are shares of it (see settings).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from cachetools import LRUCache
from sklearn.preprocessing import normalize
from tqdm.auto import tqdm

from data.schema import School
from embeddings.cache import EmbeddingCache, text_hash
from embeddings.features import StructuredEncoder, weighted_blocks
from embeddings.model import load_model, model_id
from embeddings.settings import EmbeddingSettings
from embeddings.text import profile_text

STATE_FORMAT = 1


@dataclass
class EmbeddingStats:
    """Distinct texts sent to the model, and distinct texts served from the cache."""

    encoded: int = 0
    cache_hits: int = 0


class RecipeMismatch(ValueError):
    """A saved encoder state was built with another model, feature version or weights than the
    settings now say: its index would not be comparable with new vectors, so rebuild it."""


class ProfileEmbedder:
    def __init__(self, settings: EmbeddingSettings | None = None, cache_dir: Path | None = None) -> None:
        self.settings = settings or EmbeddingSettings()
        self.cache = EmbeddingCache(cache_dir or self.settings.resolved_cache_dir())
        self.model_id = model_id(self.settings.model)
        self.encoder: StructuredEncoder | None = None
        self.stats = EmbeddingStats()
        # Vectors of profiles that are not stored (ad-hoc requests): bounded, in memory, never on disk.
        self._transient_vectors: LRUCache[str, np.ndarray] = LRUCache(maxsize=self.settings.transient_cache_size)
        self._transient_lock = threading.Lock()
        self._transient = threading.local()

    @contextmanager
    def transient(self) -> Iterator[None]:
        """Within this block, on this thread, text vectors go to a bounded in-memory cache instead
        of the disk cache: for profiles that are not stored (ad-hoc requests), so callers cannot
        grow the disk without bound. Vectors already on disk are still read from it."""
        self._transient.on = True
        try:
            yield
        finally:
            self._transient.on = False

    def _is_transient(self) -> bool:
        return getattr(self._transient, "on", False)

    # ------------------------------------------------------------------ text

    def texts(self, schools: Sequence[School]) -> list[str]:
        return [profile_text(school, self.settings.translate_chinese) for school in schools]

    @property
    def text_dim(self) -> int:
        dim = load_model(self.settings.model).get_embedding_dimension()
        if dim is None:
            raise ValueError(f"model: {self.settings.model!r} does not report a fixed embedding dimension")
        return dim

    def text_vectors(self, schools: Sequence[School]) -> np.ndarray:
        """n x text_dim unit vectors of the profile texts, from the cache where possible."""
        if not schools:
            return np.zeros((0, self.text_dim), dtype=np.float32)
        texts = self.texts(schools)
        hashes = [text_hash(text) for text in texts]
        vectors = self.cache.get_many(self.model_id, self.settings.feature_version, hashes)
        if self._is_transient():
            with self._transient_lock:
                vectors |= {key: self._transient_vectors[key] for key in hashes if key in self._transient_vectors}
        self.stats.cache_hits += len(vectors)
        missing = {key: text for key, text in zip(hashes, texts, strict=True) if key not in vectors}
        if missing:
            vectors.update(self._encode(missing))
        return np.stack([vectors[key] for key in hashes]).astype(np.float32, copy=False)

    def _encode(self, texts_by_hash: Mapping[str, str]) -> dict[str, np.ndarray]:
        """Encode in batches, writing each batch to the cache as it is done, so an interrupted
        bulk load resumes where it stopped. Longest texts first, so each batch pads little."""
        model = load_model(self.settings.model)
        items = sorted(texts_by_hash.items(), key=lambda item: -len(item[1]))
        size = self.settings.batch_size
        encoded: dict[str, np.ndarray] = {}
        batches = range(0, len(items), size)
        for start in tqdm(batches, desc="encoding profiles", unit="batch", disable=not self.settings.show_progress):
            batch = items[start : start + size]
            matrix = model.encode(
                [text for _, text in batch],
                batch_size=size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            ).astype(np.float32, copy=False)
            done = {key: row for (key, _), row in zip(batch, matrix, strict=True)}
            if self._is_transient():
                with self._transient_lock:
                    self._transient_vectors.update(done)
            else:
                self.cache.put_many(self.model_id, self.settings.feature_version, done)
            encoded.update(done)
            self.stats.encoded += len(batch)
        return encoded

    # ------------------------------------------------------------------ structured

    def fit(self, schools: Sequence[School]) -> ProfileEmbedder:
        """Learn the structured vocabularies (languages, regions, size range) from the schools."""
        self.encoder = StructuredEncoder().fit(schools)
        return self

    def _fitted(self) -> StructuredEncoder:
        if self.encoder is None:
            raise RuntimeError("ProfileEmbedder is not fitted: call fit(schools) or load_encoder_state(state) first")
        return self.encoder

    def structured(self, schools: Sequence[School]) -> np.ndarray:
        """n x structured dim: each block unit length times sqrt(its weight), zeros where empty."""
        encoder = self._fitted()
        return weighted_blocks(encoder.transform(schools), encoder.block_slices, self.settings.structured_weights())

    # ------------------------------------------------------------------ full vectors

    @property
    def dim(self) -> int:
        return self.text_dim + self._fitted().dim

    def embed(self, schools: Sequence[School]) -> np.ndarray:
        """n x dim float32, rows L2-normalised, in input order."""
        if not schools:
            return np.zeros((0, self.dim), dtype=np.float32)
        text = self.text_vectors(schools) * math.sqrt(self.settings.weight_text)
        combined = np.hstack([text, self.structured(schools)])
        return normalize(combined).astype(np.float32, copy=False)

    # ------------------------------------------------------------------ saving alongside an index

    def _recipe(self) -> dict[str, Any]:
        return {
            "model_id": self.model_id,
            "feature_version": self.settings.feature_version,
            "translate_chinese": self.settings.translate_chinese,
            "weights": {"text": self.settings.weight_text, **self.settings.structured_weights()},
        }

    def encoder_state(self) -> dict[str, Any]:
        """JSON-serialisable: what produced the vectors (recipe) and the fitted encoder."""
        return {"format": STATE_FORMAT, **self._recipe(), "encoder": self._fitted().to_state()}

    def load_encoder_state(self, state: Mapping[str, Any]) -> None:
        """Reuse a saved encoder, after checking the vectors it made are comparable with ours."""
        if state.get("format") != STATE_FORMAT:
            raise ValueError(f"format: embedder state format {state.get('format')!r}, expected {STATE_FORMAT}")
        for field, current in self._recipe().items():
            if field not in state:
                raise ValueError(f"{field}: missing from the saved embedder state")
            if state[field] != current:
                raise RecipeMismatch(
                    f"{field}: the saved index was built with {state[field]!r}, the settings now say {current!r}; "
                    "rebuild the index (or restore the setting)"
                )
        if "encoder" not in state:
            raise ValueError("encoder: missing from the saved embedder state")
        self.encoder = StructuredEncoder.from_state(state["encoder"])

    @classmethod
    def from_state(
        cls, state: Mapping[str, Any], settings: EmbeddingSettings | None = None, cache_dir: Path | None = None
    ) -> ProfileEmbedder:
        embedder = cls(settings, cache_dir)
        embedder.load_encoder_state(state)
        return embedder
