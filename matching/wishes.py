"""Wishes honoured: a school that names countries it wants partners in sees them in its list.

The reciprocal score weighs the wished country as one component among seven, so a list can fill
with well-fitting schools from elsewhere while eligible schools of the wished countries wait
further down. :func:`honour_wishes` makes the wish a floor: when eligible candidates exist in the
school's wished countries, at least ⌈k/2⌉ of its top k come from them (all of them if fewer
exist), the best of them by rank score taking the places of the weakest others. ``wishes="soft"``
leaves the ranking alone. :func:`outside_wish_reason` marks a suggestion outside the wish, and
:func:`no_wished_candidate_hint` says why none could be offered.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from typing import Literal, Protocol, TypeVar

from data.schema import School
from data.taxonomies import country_name, country_name_zh
from matching.reasons import Reason

WishMode = Literal["hard", "soft"]


class Ranked(Protocol):
    school: School
    rank_score: float


def wished_floor(k: int, available: int) -> int:
    """How many of a top ``k`` must come from the wished countries.

    >>> wished_floor(10, 30), wished_floor(10, 2), wished_floor(5, 9), wished_floor(10, 0)
    (5, 2, 3, 0)
    """
    return min(math.ceil(k / 2), available)


T = TypeVar("T", bound=Ranked)


def honour_wishes(source: School, chosen: Sequence[T], ranked: Sequence[T], k: int) -> list[T]:
    """``chosen`` (a top k, perhaps diversified) with the weakest non-wished entries replaced by the
    best wished candidates of ``ranked`` (all candidates, best first) until the floor is met."""
    wished = set(source.target_countries)
    if not wished:
        return list(chosen)
    top = list(chosen)[:k]
    floor = wished_floor(k, sum(c.school.country in wished for c in ranked))
    have = sum(c.school.country in wished for c in top)
    if have >= floor:
        return top
    listed = {c.school.id for c in top}
    extra = [c for c in ranked if c.school.country in wished and c.school.id not in listed][: floor - have]
    others = [c for c in top if c.school.country not in wished]
    drop = {id(c) for c in others[len(others) - len(extra) :]} if len(top) + len(extra) > k else set()
    kept = [c for c in top if id(c) not in drop]
    return sorted(kept + extra, key=lambda c: -c.rank_score)[:k]


def outside_wish_reason(source: School, candidate: School) -> Reason | None:
    """A plain note on a suggestion outside the countries the school asked for."""
    if not source.target_countries or candidate.country in source.target_countries:
        return None
    return _outside_wish_reason(candidate.country, tuple(source.target_countries))


@lru_cache(maxsize=4096)
def _outside_wish_reason(country: str, wished: tuple[str, ...]) -> Reason:
    """The note for a country and a wish, built once per process and shared (Reason is frozen)."""
    return Reason(
        code="outside_wished_countries",
        weight=0.0,
        data={"country": country, "wished": list(wished)},
        text_en=f"Outside your wished countries ({', '.join(map(country_name, wished))})",
        text_zh=f"不在您希望的國家內（{'、'.join(map(country_name_zh, wished))}）",
    )


def no_wished_candidate_hint(
    source: School, schools: Iterable[School], verdict: Callable[[School], Iterable[str]]
) -> str | None:
    """When no school of the wished countries is eligible: how many each rule removed.

    ``verdict(school)`` gives the names of the rules the pair breaks (empty when eligible). The
    readable reference: a request counts the same from its rule masks
    (:meth:`matching.masks.RuleMasks.broken_among`), and a property test holds the two equal."""
    wished = set(source.target_countries)
    if not wished:
        return None
    removed: Counter[str] = Counter()
    count = 0
    for school in schools:
        if school.country not in wished or school.id == source.id:
            continue
        count += 1
        broken = list(verdict(school))
        if not broken:
            return None
        removed.update(broken)
    return unmet_wish_hint(source, count, removed)


def unmet_wish_hint(source: School, count: int, removed: Counter[str]) -> str:
    """The hint's text: ``count`` schools in the wished countries, none eligible, ``removed`` the
    count per rule broken (most first; ties in the order the rules were first met)."""
    where = ", ".join(sorted(source.target_countries))
    if count == 0:
        return f"no school in your wished countries ({where}) is a member yet: suggestions come from elsewhere"
    rules = "; ".join(f"{rule}: {n}" for rule, n in removed.most_common())
    return (
        f"none of the {count} schools in your wished countries ({where}) is eligible ({rules}): "
        "suggestions come from elsewhere"
    )
