"""Structured profile features with scikit-learn encoders, fitted state serialisable to JSON.

Vocabularies come from the taxonomies where they are closed (SDGs 1-17, levels, modes, the New
Southbound countries and Taiwan) and from the schools where they are open (languages, regions,
other target countries). Everything fit learns is in ``to_state()``, so an index saved with it
is reloaded with an encoder that produces the same columns.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.preprocessing import MinMaxScaler, MultiLabelBinarizer, OneHotEncoder, normalize

from data.schema import School
from data.taxonomies import HOME_COUNTRY_DEFAULT, NSP_COUNTRIES, ExchangeMode, Level
from embeddings.settings import STRUCTURED_BLOCKS

STATE_FORMAT = 1
# Used when no fitted school gives a student count: the schema's bounds.
_DEFAULT_LOG_SIZE_RANGE = (math.log1p(1), math.log1p(100_000))


def region_key(school: School) -> str:
    """ISO 3166-2 codes carry their country; regions kept as written get it as a prefix."""
    if school.region is None:
        return school.country
    return school.region if school.region.startswith(f"{school.country}-") else f"{school.country}:{school.region}"


def _one_hot(categories: Sequence[str]) -> OneHotEncoder:
    encoder = OneHotEncoder(categories=[list(categories)], handle_unknown="ignore", dtype=np.float32)
    return encoder.fit(np.array(categories[:1], dtype=object).reshape(-1, 1))


class StructuredEncoder:
    """fit/transform over Schools; the columns are grouped in named blocks (``block_slices``)."""

    def __init__(self) -> None:
        self.vocabularies: dict[str, list[Any]] | None = None
        self.log_size_range: tuple[float, float] = _DEFAULT_LOG_SIZE_RANGE
        self._multi_hot: dict[str, MultiLabelBinarizer] = {}
        self._region: OneHotEncoder | None = None
        self._size: MinMaxScaler | None = None

    def fit(self, schools: Sequence[School]) -> StructuredEncoder:
        counts = [math.log1p(s.student_count) for s in schools if s.student_count is not None]
        self._set_state(
            {
                "sdgs": list(range(1, 18)),
                "languages": sorted({code for s in schools for code in s.languages_exchange}),
                "levels": [level.value for level in Level],
                "region": sorted({region_key(s) for s in schools}),
                "targets": sorted(
                    NSP_COUNTRIES | {HOME_COUNTRY_DEFAULT} | {c for s in schools for c in s.target_countries}
                ),
                "modes": [mode.value for mode in ExchangeMode],
            },
            (min(counts), max(counts)) if counts else _DEFAULT_LOG_SIZE_RANGE,
        )
        return self

    def _set_state(self, vocabularies: dict[str, list[Any]], log_size_range: tuple[float, float]) -> None:
        """Build the scikit-learn encoders from the learned vocabularies: the only fitted state."""
        self.vocabularies = vocabularies
        self.log_size_range = log_size_range
        self._multi_hot = {
            block: MultiLabelBinarizer(classes=values).fit([])
            for block, values in vocabularies.items()
            if block != "region"
        }
        self._region = _one_hot(vocabularies["region"]) if vocabularies["region"] else None
        self._size = MinMaxScaler(clip=True).fit(np.array([[log_size_range[0]], [log_size_range[1]]]))

    def _vocab(self) -> dict[str, list[Any]]:
        if self.vocabularies is None:
            raise RuntimeError("StructuredEncoder is not fitted: call fit(schools) or from_state(state) first")
        return self.vocabularies

    @property
    def block_sizes(self) -> dict[str, int]:
        vocab = self._vocab()
        return {block: 2 if block == "size" else len(vocab[block]) for block in STRUCTURED_BLOCKS}

    @property
    def block_slices(self) -> dict[str, slice]:
        slices, start = {}, 0
        for block, size in self.block_sizes.items():
            slices[block] = slice(start, start + size)
            start += size
        return slices

    @property
    def dim(self) -> int:
        return sum(self.block_sizes.values())

    def feature_names(self) -> list[str]:
        vocab = self._vocab()
        return [
            f"{block}:{value}"
            for block in STRUCTURED_BLOCKS
            for value in (("small", "large") if block == "size" else vocab[block])
        ]

    def transform(self, schools: Sequence[School]) -> np.ndarray:
        """Raw (unweighted) features, n x dim float32; a school with nothing in a block has zeros there."""
        vocab = self._vocab()

        def multi_hot(block: str, rows: list[list[Any]]) -> np.ndarray:
            known = set(vocab[block])  # values unseen at fit time encode as zeros, without a warning
            return self._multi_hot[block].transform([[v for v in row if v in known] for row in rows])

        blocks = {
            "sdgs": multi_hot("sdgs", [s.sdgs for s in schools]),
            "languages": multi_hot("languages", [s.languages_exchange for s in schools]),
            "levels": multi_hot("levels", [[level.value for level in s.levels] for s in schools]),
            "region": self._region_block(schools),
            "size": self._size_block(schools),
            "targets": multi_hot("targets", [s.target_countries for s in schools]),
            "modes": multi_hot("modes", [[mode.value for mode in s.exchange_modes] for s in schools]),
        }
        return np.hstack([np.asarray(blocks[b], dtype=np.float32).reshape(len(schools), -1) for b in STRUCTURED_BLOCKS])

    def _region_block(self, schools: Sequence[School]) -> np.ndarray:
        if self._region is None:
            return np.zeros((len(schools), 0), dtype=np.float32)
        keys = np.array([region_key(s) for s in schools], dtype=object).reshape(-1, 1)
        with warnings.catch_warnings():
            # An unseen region is expected (a school added after the fit): it encodes as zeros.
            warnings.filterwarnings("ignore", message="Found unknown categories", category=UserWarning)
            return self._region.transform(keys).toarray()

    def _size_block(self, schools: Sequence[School]) -> np.ndarray:
        """The scaled log count as an angle on a quarter circle: two schools' block cosine then
        falls smoothly with their difference in size, which a single scaled number cannot do."""
        block = np.zeros((len(schools), 2), dtype=np.float32)
        rows = [i for i, s in enumerate(schools) if s.student_count is not None]
        if rows and self._size is not None:
            logs = np.array([[math.log1p(schools[i].student_count or 0)] for i in rows])
            angle = self._size.transform(logs)[:, 0] * (math.pi / 2)
            block[rows] = np.column_stack([np.cos(angle), np.sin(angle)])
        return block

    def to_state(self) -> dict[str, Any]:
        return {"format": STATE_FORMAT, "vocabularies": self._vocab(), "log_size_range": list(self.log_size_range)}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> StructuredEncoder:
        if state.get("format") != STATE_FORMAT:
            raise ValueError(f"format: encoder state format {state.get('format')!r}, expected {STATE_FORMAT}")
        expected = set(STRUCTURED_BLOCKS) - {"size"}
        vocabularies = state.get("vocabularies")
        if not isinstance(vocabularies, Mapping) or set(vocabularies) != expected:
            raise ValueError(f"vocabularies: expected one list for each of {sorted(expected)}")
        size_range = state.get("log_size_range")
        if not (isinstance(size_range, Sequence) and len(size_range) == 2):
            raise ValueError("log_size_range: expected [low, high]")
        encoder = cls()
        encoder._set_state(
            {block: list(values) for block, values in vocabularies.items()},
            (float(size_range[0]), float(size_range[1])),
        )
        return encoder


def weighted_blocks(features: np.ndarray, slices: Mapping[str, slice], weights: Mapping[str, float]) -> np.ndarray:
    """Scale each block's rows to unit length, then by sqrt(weight): weights become shares of the
    squared norm, so a school with five SDGs weighs as much as one with a single goal."""
    out = np.zeros_like(features, dtype=np.float32)
    for block, columns in slices.items():
        if columns.stop > columns.start and len(features):
            out[:, columns] = normalize(features[:, columns]) * math.sqrt(weights[block])
    return out
