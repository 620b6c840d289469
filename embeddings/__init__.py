"""Profile embeddings: School -> English text -> sentence-transformers vector, plus structured
features, one L2-normalised float32 vector per school, cached on disk by text hash."""

from embeddings.cache import EmbeddingCache, text_hash
from embeddings.chinese import is_chinese, translate_terms
from embeddings.embedder import EmbeddingStats, ProfileEmbedder, RecipeMismatch
from embeddings.features import StructuredEncoder
from embeddings.hashed import HashedTextEmbedder, make_embedder
from embeddings.model import load_model, model_id
from embeddings.settings import EmbeddingSettings
from embeddings.text import profile_hints, profile_text

__all__ = [
    "EmbeddingCache",
    "EmbeddingSettings",
    "EmbeddingStats",
    "HashedTextEmbedder",
    "ProfileEmbedder",
    "RecipeMismatch",
    "StructuredEncoder",
    "is_chinese",
    "load_model",
    "make_embedder",
    "model_id",
    "profile_hints",
    "profile_text",
    "text_hash",
    "translate_terms",
]
