"""A trained reciprocal ranker: learn from the partnership history which pairs go on to partner.

Hand-set fit weights cannot know how a given alliance forms partnerships (county programmes,
referrals through partners, favourite countries, shared themes); its history can. The ranker is
trained the way it will be used:

1. hide part of the history: by default (``holdout="time"``) pick a cut-off inside it (the last
   ``positive_share`` of partnerships by start date lie after it) and rebuild the network as it
   stood that day, which is what the service does: predict the partnerships still to come; with
   ``holdout="random"`` hide a seeded ``positive_share`` of the pairs instead (whole pairs, the
   rest as recorded), which is the task of finding the missing links of a network, as the
   evaluation's random split asks;
2. every school with a hidden partnership asks, as a query, for candidates in the network that
   is left: every school eligible there (the engine's own masks and array scores), as the
   service ranks every eligible school;
3. candidates it did partner with are positives; of the other eligible ones, the near misses by
   each ranking signal and a random sample are the negatives;
4. :class:`~matching.features.PairFeatures` (fitted on the network that is left only)
   describes each pair, symmetric in the two schools, and a scikit-learn
   ``HistGradientBoostingClassifier`` learns P(partnership | pair);
5. a logistic regression on the same rows, over the features that need no profile vector
   (:data:`~matching.features.FIRST_STAGE_NAMES`), is the first stage: a request works out those
   columns for every eligible school and the full features and trees only for the
   :attr:`ReciprocalRanker.shortlist` it ranks highest, with the nearest by vector and the best in
   the wished countries (:func:`matching.retrieve.pool`), so neither the vector search nor the trees
   grow with the number of eligible schools. On the 2k evaluation worlds (time split, ranker alone)
   the trees over the first stage's best 3% or 9% of the eligible kept the recall@10 of the trees
   over all of them (affinity 0.206-0.212 against 0.214, programmes 0.278-0.281 against 0.278),
   where the nearest by vector and each history source's best at the same size lost a third
   (0.136 and 0.172).

For serving, the features are refitted on the whole history, so the model scores today's
network. Below :data:`MIN_PARTNERSHIPS` partnerships, or :data:`MIN_POSITIVES` positive
examples, there is too little to learn from and training refuses: the service keeps the
hand-weighted reciprocal score (see :func:`load_ranker`).

Explanations: the features that lifted a candidate most are those whose replacement by the
typical value among the candidates lowers the model's score most, so two candidates seldom
share the same first reason.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from functools import cache
from pathlib import Path
from typing import Any, Literal

import joblib
import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from threadpoolctl import ThreadpoolController

import graph
from data.schema import Partnership
from matching import sources
from matching.arrays import ArrayScores, PathSums
from matching.engine import Matcher
from matching.features import COLUMN, FEATURE_NAMES, FEATURES, FIRST_STAGE_NAMES, PairFeatures
from matching.reasons import Reason
from matching.retrieve import Request, pool
from matching.settings import MatchSettings, RebalanceWeights
from matching.table import ProfileTable, Row

FORMAT_VERSION = 5
"""Bumped when the saved model's features or layout change: an older file is then ignored."""
RANKER_DIR = "ranker"
MIN_PARTNERSHIPS = 150
"""Fewer partnerships than this in the history: too little to learn from; the hand-weighted score stays."""
MIN_POSITIVES = 40
"""Fewer partnerships than this after the training cut-off: too few positive examples."""

NEUTRAL_REBALANCING = RebalanceWeights(
    saturation_threshold=1.0,
    no_partner_boost=0.0,
    remote_boost=0.0,
    cluster_boost=0.0,
    diversity_decay=1.0,
    responsiveness_floor=1.0,
    exposure_strength=0.0,
)
"""Every graph factor is 1 for a candidate with room (a full one fails the capacity rule anyway)."""


HARD_NEGATIVE_SIGNALS = (
    "similarity",
    "adamic_adar_l3",
    "region_partners_home",
    "region_partners_other",
    "region_country_rate_home",
    "region_country_rate_other",
)
"""Features by which a simple ranker would already rank candidates (each a baseline's own signal)."""


class InsufficientHistory(ValueError):
    """The partnership history is too small to train on."""


@dataclass(frozen=True)
class TrainingSettings:
    holdout: Literal["time", "random"] = "time"
    """How the positives are hidden from the network they are learned in (see the module docstring):
    the newest partnerships (the service's task), or a random share of the pairs."""
    positive_share: float = 0.25
    """Share of the history (newest by start date, or a random sample of pairs) whose partnerships are the positives."""
    hard_negatives: int = 20
    """Per query, the eligible non-partners ranked highest by the hand-weighted score and by each of
    :data:`HARD_NEGATIVE_SIGNALS`: the near misses a ranker must tell apart."""
    random_negatives: int = 60
    """Other eligible non-partners per query, at random: every eligible school is ranked in service."""
    max_queries: int = 600
    """Queries sampled (seeded) per window when more started a partnership in it: bounds training time."""
    windows: int | None = None
    """Hidden parts trained from: by time, each a window of ``positive_share`` of the history back
    from the last; at random, disjoint samples of ``positive_share`` of the pairs. None: one by
    time (older windows added little on the generated worlds), and at random as many as hide every
    pair once (4 at a share of 0.25; on the 2k worlds' random splits 1 part gave recall@10 0.146 /
    0.242, 2 parts 0.186 / 0.293)."""

    @property
    def parts(self) -> int:
        if self.windows is not None:
            return self.windows
        return max(1, round(1 / self.positive_share)) if self.holdout == "random" else 1

    validation_share: float = 0.2
    seed: int = 7


@dataclass
class TrainingSet:
    X: np.ndarray
    y: np.ndarray
    group: np.ndarray
    """Query number of each row, for grouped validation and per-query recall."""
    weight: np.ndarray
    """Inverse of each row's chance of being sampled: the weighted rows stand for every eligible
    candidate, so the model learns P(partnership) over what it will rank, not over the sample."""
    reciprocal: np.ndarray
    """The hand-weighted reciprocal score of each row, to compare with."""
    cutoff: date
    """The day the first hidden part's features read the history as of."""
    queries: int


@dataclass(frozen=True)
class Window:
    """One hidden part of the history: the network left (as it stood on ``day``) and the hidden
    partnerships, whose pairs are the positives."""

    seen: list[Partnership]
    day: date
    hidden: list[Partnership]


def as_of(partnerships: Sequence[Partnership], day: date) -> list[Partnership]:
    """The partnerships that had started before ``day``, as they stood then (running if they ended later)."""
    return [
        p.model_copy(update={"end_date": None}) if p.end_date is not None and p.end_date >= day else p
        for p in partnerships
        if p.start_date < day
    ]


def training_cutoff(partnerships: Sequence[Partnership], positive_share: float) -> date:
    """The start date after which ``positive_share`` of the partnerships began."""
    days = sorted(p.start_date for p in partnerships)
    return days[min(len(days) - 1, max(1, int(len(days) * (1 - positive_share))))]


def _check_history(partnerships: Sequence[Partnership]) -> None:
    if len(partnerships) < MIN_PARTNERSHIPS:
        raise InsufficientHistory(
            f"partnerships: {len(partnerships)} in the history, the ranker needs at least {MIN_PARTNERSHIPS}; "
            "the hand-weighted score is used"
        )


def windows(partnerships: Sequence[Partnership], settings: TrainingSettings) -> list[Window]:
    """The parts of the history hidden to learn from (see :class:`TrainingSettings`); a part with
    fewer than :data:`MIN_POSITIVES` partnerships ends the list (refused if it is the first)."""
    if settings.holdout == "random":
        parts = _random_parts(partnerships, settings)
    else:
        parts = _time_parts(partnerships, settings)
    out = []
    for part in parts:
        if len(part.hidden) < MIN_POSITIVES:
            if not out:
                raise InsufficientHistory(
                    f"partnerships: fewer than {MIN_POSITIVES} hidden as of {part.day} to learn from; "
                    "the hand-weighted score is used"
                )
            break
        out.append(part)
    return out


def _time_parts(partnerships: Sequence[Partnership], settings: TrainingSettings) -> list[Window]:
    """Newest first: the network on each cut-off day, and what started between it and the next one."""
    cutoffs = [training_cutoff(partnerships, settings.positive_share * (i + 1)) for i in range(settings.parts)]
    return [
        Window(
            as_of(partnerships, cutoff),
            cutoff,
            [p for p in partnerships if p.start_date >= cutoff and (not number or p.start_date < cutoffs[number - 1])],
        )
        for number, cutoff in enumerate(cutoffs)
    ]


def _random_parts(partnerships: Sequence[Partnership], settings: TrainingSettings) -> list[Window]:
    """Disjoint seeded samples of the pairs, each hidden whole (a renewal cannot give the answer
    away), the rest of the history as recorded, read as of the day after its last start."""
    pairs = sorted({p.pair for p in partnerships})
    random.Random(settings.seed).shuffle(pairs)
    size = max(1, round(settings.positive_share * len(pairs)))
    today = max(p.start_date for p in partnerships) + timedelta(days=1)
    parts = []
    for number in range(min(settings.parts, len(pairs) // size)):
        hidden = set(pairs[number * size : (number + 1) * size])
        seen = [p for p in partnerships if p.pair not in hidden]
        parts.append(Window(seen, today, [p for p in partnerships if p.pair in hidden]))
    return parts


def training_set(matcher: Matcher, partnerships: Sequence[Partnership], settings: TrainingSettings) -> TrainingSet:
    """Queries, candidates and labels from each hidden part of the history (see :func:`windows`)."""
    _check_history(partnerships)
    parts_of_history = windows(partnerships, settings)
    rng = np.random.default_rng(settings.seed)
    parts: list[list[np.ndarray]] = [[], [], [], [], []]
    for window in parts_of_history:
        for part, block in zip(parts, _window(matcher, window, settings, rng), strict=True):
            part.extend(block)
    X, labels, queries, weights, reciprocal = parts
    if not X:
        raise InsufficientHistory(
            f"partnerships: none of those hidden as of {parts_of_history[0].day} was between schools eligible then"
        )
    return TrainingSet(
        np.vstack(X),
        np.concatenate(labels).astype(int),
        np.concatenate([np.full(len(q), n) for n, q in enumerate(queries)]),
        np.concatenate(weights),
        np.concatenate(reciprocal),
        parts_of_history[0].day,
        len(X),
    )


def _window(
    matcher: Matcher, window: Window, settings: TrainingSettings, rng: np.random.Generator
) -> tuple[list[np.ndarray], ...]:
    """One hidden part's examples (feature rows, labels, a query marker, weights, reciprocal scores
    per query): ``matcher``'s graph is replaced by the network left, so the rules and features see
    no hidden partnership; each query's candidates are every school eligible then (the engine's own
    masks and array scores), its hidden partners the positives."""
    schools = list(matcher.schools.values())
    then = replace(
        matcher,
        partnerships=graph.build_partnership_graph(schools, window.seen),
        pending={},
        history={},
        exposure=None,
        ranker=None,
        table=None,  # made anew from that day's partnerships: the loads and free places of then
    )
    future: dict[str, set[str]] = defaultdict(set)
    for p in window.hidden:
        future[p.school_a].add(p.school_b)
        future[p.school_b].add(p.school_a)
    queries = sorted(q for q in future if q in then.schools and then.schools[q].active)
    if len(queries) > settings.max_queries:
        queries = sorted(random.Random(settings.seed).sample(queries, settings.max_queries))
    features = PairFeatures().fit(schools, window.seen, window.day, home_country=matcher.settings.home_country)
    pool_settings = without_rebalancing(then.settings)
    table = then.table
    out: tuple[list[np.ndarray], ...] = ([], [], [], [], [])
    for query in queries:
        found = pool(then, table, Request(then.schools[query], 1, pool_settings, depth=len(table)))
        label = np.array([table.ids[r] in future[query] for r in found.rows], dtype=bool)
        if not label.any():  # no later partner was eligible then: nothing to rank
            continue
        X = features.transform_rows(table, found.row, found.rows, found.similarity, found.scores)
        keep, weight = _sample(X, found.scores.reciprocal, label, settings, rng)
        for part, value in zip(out, (X[keep], label[keep], keep, weight, found.scores.reciprocal[keep]), strict=True):
            part.append(value)
    return out


def _sample(
    X: np.ndarray, reciprocal: np.ndarray, label: np.ndarray, settings: TrainingSettings, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Positions kept from one query's candidates and their weights: every positive and the hard
    negatives by each ranking signal (see :class:`TrainingSettings`) with weight 1, and random
    negatives from the rest, each weighted by how many of the rest it stands for."""
    negatives = np.flatnonzero(~label)
    certain = set(np.flatnonzero(label).tolist())
    for signal in (reciprocal, *(X[:, COLUMN[name]] for name in HARD_NEGATIVE_SIGNALS)):
        best = negatives[np.argsort(-signal[negatives], kind="stable")[: settings.hard_negatives]]
        certain.update(best[signal[best] > 0].tolist())
    rest = np.setdiff1d(negatives, np.fromiter(certain, dtype=np.int64, count=len(certain)))
    drawn = rng.choice(rest, min(len(rest), settings.random_negatives), replace=False)
    keep = np.concatenate([np.array(sorted(certain), dtype=np.int64), np.sort(drawn)])
    weight = np.concatenate([np.ones(len(certain)), np.full(len(drawn), len(rest) / max(len(drawn), 1))])
    return keep, weight


@cache
def _controller() -> ThreadpoolController:
    """Found once, at the first fit or prediction (scikit-learn's OpenMP library is loaded by then):
    listing the loaded thread pools takes milliseconds, limiting a known one microseconds."""
    return ThreadpoolController()


def _one_openmp_thread() -> Any:
    return _controller().limit(limits=1, user_api="openmp")


FIRST_STAGE_COLUMNS = np.array([COLUMN[name] for name in FIRST_STAGE_NAMES])
"""The feature columns the first stage reads, as :meth:`PairFeatures.first_stage_rows` gives them."""


class LinearShortlist:
    """The ranker's first stage: a logistic regression folded into one weight vector (a missing
    value reads as the training median), so picking a request's shortlist from every eligible
    candidate costs one matrix-vector product instead of a pass of every tree."""

    def __init__(self, C: float = 1.0):
        self.C = C

    def fit(self, X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None) -> LinearShortlist:
        self.fill_ = np.nan_to_num(column_medians(X))  # a feature missing in every row reads as 0
        filled = np.where(np.isnan(X), self.fill_, X)
        mean = np.average(filled, axis=0, weights=sample_weight)
        scale = np.sqrt(np.average((filled - mean) ** 2, axis=0, weights=sample_weight))
        scale[scale == 0] = 1.0  # a constant column: left as it is
        model = LogisticRegression(C=self.C, class_weight="balanced", max_iter=2000).fit(
            (filled - mean) / scale, y, sample_weight=sample_weight
        )
        self.coef_ = model.coef_[0] / scale
        self.intercept_ = float(model.intercept_[0] - mean @ self.coef_)
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        return self.decision_columns(list(X.T))

    def decision_columns(self, columns: Sequence[np.ndarray]) -> np.ndarray:
        """:meth:`decision_function` of the matrix these columns would make, added up column by
        column: no matrix of every eligible candidate is made, and a missing value costs a pass
        only in a column that has one."""
        total = np.full(len(columns[0]), self.intercept_)
        for column, weight, fill in zip(columns, self.coef_, self.fill_, strict=True):
            missing = np.isnan(column)
            total += weight * (np.where(missing, fill, column) if missing.any() else column)
        return total


class ReciprocalRanker:
    """P(the pair partners | its features): gradient-boosted trees, scikit-learn style, behind a
    linear first stage over the :data:`FIRST_STAGE_COLUMNS` that picks the :attr:`shortlist`
    candidates the trees score (see :func:`matching.retrieve.pool`).

    OpenMP is held to one thread: a process that forks workers after an OpenMP pool has started
    (the evaluation does) deadlocks in them, and a request's few hundred rows gain nothing from threads."""

    def __init__(
        self,
        max_iter: int = 120,
        learning_rate: float = 0.08,
        max_leaf_nodes: int = 31,
        seed: int = 7,
        shortlist: int = 300,
    ):
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.seed = seed
        self.shortlist = shortlist

    def fit(self, X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None) -> ReciprocalRanker:
        self.first_stage_ = LinearShortlist().fit(X[:, FIRST_STAGE_COLUMNS], y, sample_weight)
        with _one_openmp_thread():
            return self._fit(X, y, sample_weight)

    def _fit(self, X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None) -> ReciprocalRanker:
        self.model_ = HistGradientBoostingClassifier(
            max_iter=self.max_iter,
            learning_rate=self.learning_rate,
            max_leaf_nodes=self.max_leaf_nodes,
            l2_regularization=1.0,
            class_weight="balanced",
            random_state=self.seed,
        ).fit(X, y, sample_weight=sample_weight)
        self.n_features_in_ = X.shape[1]
        return self

    def predict_score(self, X: np.ndarray) -> np.ndarray:
        """The model's probability of partnership, in [0, 1] (class-balanced, so a rank score)."""
        if len(X) == 0:
            return np.zeros(0)
        with _one_openmp_thread():
            return self.model_.predict_proba(X)[:, 1]

    def first_stage(self, columns: Sequence[np.ndarray]) -> np.ndarray:
        """The first stage's score from the :data:`FIRST_STAGE_COLUMNS`' columns, in that order."""
        return self.first_stage_.decision_columns(columns)


def recall_at(scores: np.ndarray, y: np.ndarray, group: np.ndarray, k: int = 10) -> float:
    """Mean over queries with a positive of the share of its positives in its top ``k`` by score."""
    recalls = []
    for g in np.unique(group):
        rows = np.flatnonzero(group == g)
        if not y[rows].any():
            continue
        top = rows[np.argsort(-scores[rows], kind="stable")[:k]]
        recalls.append(y[top].sum() / y[rows].sum())
    return float(np.mean(recalls)) if recalls else 0.0


def fit_validated(
    data: TrainingSet, settings: TrainingSettings, model: ReciprocalRanker
) -> tuple[ReciprocalRanker, dict[str, Any]]:
    """Fit on most queries and measure on the rest (whole queries held out): AUC and recall@10
    against the reciprocal score, and each feature's permutation importance (drop in AUC) on the
    held-out rows. The model fitted once is the one served: a second fit would double the time."""
    rng = np.random.default_rng(settings.seed)
    held = rng.random(data.queries) < settings.validation_share
    test = held[data.group]
    model.fit(data.X[~test], data.y[~test], data.weight[~test])
    scores = model.predict_score(data.X[test])
    y, group = data.y[test], data.group[test]
    figures = {
        "validation_rows": int(test.sum()),
        "validation_queries": int(held.sum()),
        "auc": float(roc_auc_score(y, scores)) if 0 < y.sum() < len(y) else None,
        "auc_reciprocal": float(roc_auc_score(y, data.reciprocal[test])) if 0 < y.sum() < len(y) else None,
        "recall@10": recall_at(scores, y, group),
        "recall@10_reciprocal": recall_at(data.reciprocal[test], y, group),
        "recall@10_first_stage": recall_at(
            model.first_stage_.decision_function(data.X[test][:, FIRST_STAGE_COLUMNS]), y, group
        ),
    }
    base = figures["auc"] or 0.0
    shuffle = np.random.default_rng(settings.seed + 1)
    importance = {}
    X = data.X[test]
    for j, name in enumerate(FEATURE_NAMES):
        permuted = X.copy()
        permuted[:, j] = shuffle.permutation(permuted[:, j])
        drop = base - (roc_auc_score(y, model.predict_score(permuted)) if 0 < y.sum() < len(y) else 0.0)
        importance[name] = float(drop)
    figures["importance"] = dict(sorted(importance.items(), key=lambda kv: -kv[1]))
    return model, figures


def column_medians(X: np.ndarray) -> np.ndarray:
    """Each column's median over its known values (NaN if none), as ``np.nanmedian(X, axis=0)``
    gives, without the masked-array path NumPy takes for small arrays (0.5 ms for 10 rows).

    >>> column_medians(np.array([[1.0, np.nan, np.nan], [3.0, 2.0, np.nan], [4.0, 5.0, np.nan]])).tolist()
    [3.0, 3.5, nan]
    """
    ordered = np.sort(X, axis=0)  # NaN sorts last
    known = np.count_nonzero(~np.isnan(X), axis=0)
    columns = np.arange(X.shape[1])
    low, high = np.maximum((known - 1) // 2, 0), known // 2
    return np.where(known > 0, (ordered[low, columns] + ordered[high, columns]) / 2, np.nan)


@dataclass
class RankerModel:
    """What the engine loads: the trained ranker and the features fitted on the whole history.

    The engine calls ``feature_rows`` over a request's candidate rows, then ``score`` and, for the
    candidates it shows, ``explain`` (the :class:`~matching.arrays.LearnedScorer` protocol)."""

    ranker: ReciprocalRanker
    pair_features: PairFeatures
    metadata: dict[str, Any]

    def feature_rows(
        self,
        table: ProfileTable,
        source: Row,
        rows: np.ndarray,
        similarity: np.ndarray,
        scores: ArrayScores,
        paths: PathSums | None = None,
    ) -> np.ndarray:
        return self.pair_features.transform_rows(table, source, rows, similarity, scores, paths)

    def path_sums(self, table: ProfileTable, source: Row, rows: np.ndarray) -> PathSums:
        return self.pair_features.path_sums(table, source.school.id, rows)

    def score(self, features: np.ndarray) -> np.ndarray:
        return self.ranker.predict_score(features)

    @property
    def shortlist(self) -> int:
        return self.ranker.shortlist

    def first_stage(
        self, table: ProfileTable, source: Row, rows: np.ndarray, components: np.ndarray, paths: PathSums
    ) -> np.ndarray:
        return self.ranker.first_stage(self.pair_features.first_stage_columns(table, source, rows, components, paths))

    def source_scores(
        self, table: ProfileTable, source: Row, rows: np.ndarray, paths: PathSums | None = None
    ) -> dict[str, np.ndarray]:
        return sources.source_scores(self.pair_features, table, source, rows, paths)

    def explain(self, features: np.ndarray, top: int = 3) -> list[list[Reason]]:
        """For each candidate, the features that lifted its score most: the drop in score when the
        feature is set to its median over these candidates (so reasons say what sets it apart)."""
        X = features
        if len(X) == 0:
            return []
        reference = column_medians(X) if len(X) > 1 else np.zeros(X.shape[1])
        n, f = X.shape
        # A probe only where the feature differs from the reference (else its lift is 0 exactly),
        # scored in one call with the candidates themselves.
        same = (reference == X) | (np.isnan(X) & np.isnan(reference))
        at, cols = np.nonzero(~same)
        probes = X[at]
        probes[np.arange(len(at)), cols] = reference[cols]
        scored = self.ranker.predict_score(np.vstack([X, probes]))
        lift = np.zeros((n, f))
        lift[at, cols] = scored[at] - scored[n:]
        reasons = []
        for i in range(n):
            order = [j for j in np.argsort(-lift[i], kind="stable")[:top] if lift[i, j] > 0.005]
            reasons.append(
                [
                    Reason(
                        code=f"model_{FEATURES[j].name}",
                        weight=round(float(lift[i, j]), 4),
                        data={"value": None if math.isnan(X[i, j]) else round(float(X[i, j]), 4)},
                        text_en=f"Learned from past partnerships: {FEATURES[j].text_en}",
                        text_zh=f"從過去的結盟學到：{FEATURES[j].text_zh}",
                    )
                    for j in order
                ]
            )
        return reasons


def train(
    matcher: Matcher,
    partnerships: Sequence[Partnership],
    settings: TrainingSettings | None = None,
    ranker: ReciprocalRanker | None = None,
) -> RankerModel:
    """Build the training set, validate, fit on every query, and refit the features on the whole
    history for serving (see the module docstring)."""
    settings = settings or TrainingSettings()
    ranker = ranker or ReciprocalRanker(seed=settings.seed)
    started = time.perf_counter()
    data = training_set(matcher, partnerships, settings)
    built = time.perf_counter() - started
    ranker, figures = fit_validated(data, settings, ranker)
    today = max(p.start_date for p in partnerships) + timedelta(days=1)
    features = PairFeatures().fit(
        list(matcher.schools.values()), partnerships, today, home_country=matcher.settings.home_country
    )
    return RankerModel(
        ranker,
        features,
        {
            "format": FORMAT_VERSION,
            "features": list(FEATURE_NAMES),
            "partnerships": len(partnerships),
            "holdout": settings.holdout,
            "cutoff": data.cutoff.isoformat(),
            "queries": data.queries,
            "rows": len(data.y),
            "positives": int(data.y.sum()),
            "seconds_building": round(built, 2),
            "seconds": round(time.perf_counter() - started, 2),
            "validation": figures,
        },
    )


def save_ranker(model: RankerModel, index_dir: Path) -> Path:
    """Save beside the index as ranker/ranker-v<N>.joblib (N one more than the newest) with its
    metadata, and point ranker/current.json at it; earlier versions stay for roll-back."""
    folder = index_dir / RANKER_DIR
    folder.mkdir(parents=True, exist_ok=True)
    versions = [int(p.stem.split("-v")[-1]) for p in folder.glob("ranker-v*.joblib")]
    version = max(versions, default=0) + 1
    file = folder / f"ranker-v{version}.joblib"
    joblib.dump(model, file)
    meta = {**model.metadata, "version": version, "file": file.name}
    (folder / f"ranker-v{version}.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False), encoding="utf-8")
    (folder / "current.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False), encoding="utf-8")
    return file


def load_ranker(index_dir: Path) -> RankerModel | None:
    """The current saved model, or None (never trained, or saved in an older format): the engine
    then ranks by the hand-weighted reciprocal score."""
    current = index_dir / RANKER_DIR / "current.json"
    if not current.exists():
        return None
    meta = json.loads(current.read_text(encoding="utf-8"))
    if meta.get("format") != FORMAT_VERSION:
        return None
    return joblib.load(index_dir / RANKER_DIR / meta["file"])


def without_rebalancing(settings: MatchSettings) -> MatchSettings:
    """Settings for ranking by the pair score alone: graph factors neutral, no diversity re-rank."""
    return settings.model_copy(update={"diversity": False, "rebalance": NEUTRAL_REBALANCING})
