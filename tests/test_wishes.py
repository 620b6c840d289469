"""Wishes honoured: the floor of wished-country candidates, the note outside the wish, the hint when none."""

from __future__ import annotations

import doctest
from dataclasses import dataclass
from typing import Any

import pytest

import matching.wishes
from data.schema import School
from matching.wishes import honour_wishes, no_wished_candidate_hint, outside_wish_reason


@dataclass
class Row:
    school: School
    rank_score: float


def test_doctests() -> None:
    assert doctest.testmod(matching.wishes).failed == 0


@pytest.fixture
def rows(make_school: Any) -> list[Row]:
    """Ten Malaysian candidates above three Indonesian ones, best first."""
    countries = ["MY"] * 10 + ["ID"] * 3
    return [
        Row(make_school(id=f"s{i}", country=c, region=None, target_countries=["TW"]), 1.0 - i / 100)
        for i, c in enumerate(countries)
    ]


@pytest.mark.parametrize(
    ("wished", "k", "expected_wished"),
    [
        (["ID", "AU"], 10, 3),  # fewer than ⌈k/2⌉ exist: all of them
        (["ID"], 4, 2),  # ⌈4/2⌉
        (["MY"], 10, 10),  # already met: unchanged
        ([], 10, 0),  # no wish: unchanged
    ],
)
def test_the_floor_of_wished_candidates(
    make_school: Any, rows: list[Row], wished: list[str], k: int, expected_wished: int
) -> None:
    source = make_school(target_countries=wished)
    top = honour_wishes(source, rows[:k], rows, k)
    assert len(top) == k
    assert sum(r.school.country in wished for r in top) == expected_wished
    assert [r.rank_score for r in top] == sorted((r.rank_score for r in top), reverse=True)
    if wished == ["ID", "AU"]:
        assert [r.school.id for r in top[:7]] == [f"s{i}" for i in range(7)]  # the weakest others gave way


def test_a_suggestion_outside_the_wish_says_so(make_school: Any) -> None:
    source = make_school(target_countries=["AU", "ID"])
    reason = outside_wish_reason(source, make_school(country="MY", region=None, target_countries=["TW"]))
    assert reason is not None and "Australia, Indonesia" in reason.text_en and "澳洲、印尼" in reason.text_zh
    assert outside_wish_reason(source, make_school(country="ID", region=None, target_countries=["TW"])) is None


def test_the_hint_counts_what_each_rule_removed(make_school: Any) -> None:
    source = make_school(target_countries=["ID", "NZ"])
    others = [make_school(id=f"id{i}", country="ID", region=None, target_countries=["TW"]) for i in range(3)]
    verdicts = {"id0": ["at_capacity"], "id1": ["at_capacity", "no_shared_language"], "id2": ["no_shared_language"]}
    hint = no_wished_candidate_hint(source, others, lambda s: verdicts[s.id])
    assert hint is not None and "3 schools" in hint and "at_capacity: 2" in hint and "no_shared_language: 2" in hint
    assert no_wished_candidate_hint(source, others, lambda s: [] if s.id == "id2" else ["x"]) is None
    assert "is a member yet" in no_wished_candidate_hint(make_school(target_countries=["NZ"]), others, lambda s: [])
