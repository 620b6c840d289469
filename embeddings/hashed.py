"""A hashed bag-of-words text encoder, for benchmarks and load tests only: no semantics.

Encoding 100k profiles with the sentence-transformers model takes about 20 minutes on two cores,
while search, scoring and serving cost depends on the vectors' dimension, not on where they came
from. This encoder fills the text block with scikit-learn's HashingVectorizer at the model's
dimension in milliseconds, so a 100k world can be built and served quickly. Its suggestions match
words, not meaning: never use it for real matching (PARTNERMATCH_EMBEDDING_TEXT_ENCODER=hashed).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.preprocessing import normalize

from data.schema import School
from embeddings.embedder import ProfileEmbedder
from embeddings.settings import EmbeddingSettings

# The shipped model's dimension (all-MiniLM-L6-v2), so vectors cost the same to search.
HASHED_TEXT_DIM = 384
# Recorded as the recipe's model id: an index built with hashed text is never reused with the model.
HASHED_MODEL_ID = f"hashed-bag-of-words-{HASHED_TEXT_DIM}"


class HashedTextEmbedder(ProfileEmbedder):
    """ProfileEmbedder whose text block is a hashed bag of words of the model's dimension
    (nothing is cached: hashing is faster than a cache lookup)."""

    _hasher = HashingVectorizer(n_features=HASHED_TEXT_DIM, alternate_sign=True, norm=None)

    def __init__(self, settings: EmbeddingSettings | None = None, cache_dir: Path | None = None) -> None:
        super().__init__(settings, cache_dir)
        self.model_id = HASHED_MODEL_ID

    @property
    def text_dim(self) -> int:
        return HASHED_TEXT_DIM

    def text_vectors(self, schools: Sequence[School]) -> np.ndarray:
        if not schools:
            return np.zeros((0, HASHED_TEXT_DIM), dtype=np.float32)
        matrix = self._hasher.transform(self.texts(schools))
        return normalize(matrix).toarray().astype(np.float32)


def make_embedder(settings: EmbeddingSettings | None = None, cache_dir: Path | None = None) -> ProfileEmbedder:
    """The embedder the settings' text_encoder names: the model (default) or hashed (benchmarks only)."""
    settings = settings or EmbeddingSettings()
    if settings.text_encoder == "hashed":
        return HashedTextEmbedder(settings, cache_dir)
    return ProfileEmbedder(settings, cache_dir)
