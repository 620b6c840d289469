"""Matching rounds in the service: run one over the live Matcher and keep it; accept it later.

A round is a proposal staff review, often hours or days before they accept it; meanwhile schools
answer invitations, fill places, change profiles. Accepting therefore checks every pair again
against the network as it is now, under the writer mutex (as accepting an invitation does), and
writes nothing unless every pair is still possible: the partnerships and the round's new status
commit in one transaction, then the Matcher syncs so the next suggestion sees them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import date

from data.errors import Conflict
from data.schema import Partnership, RoundStatus, StoredRound
from matching.constraints import Rule
from matching.engine import Matcher
from matching.rounds import RoundOptions, RoundPair, RoundResult, accept, remaining_capacity, run_round
from service.errors import ApiError
from service.invitations import pair_check
from service.models import PairRef, RoundSummary
from service.state import ServiceState

SHOWN_PAIRS = 50


def start(
    state: ServiceState, cohort: Sequence[str] | None, options: RoundOptions, *, created_by: str | None
) -> StoredRound:
    """Run a round under the reading lock (it takes seconds for thousands of schools) and store it.
    A cohort naming unknown or inactive schools is refused (422) with their ids."""
    with state.reading() as matcher:
        if cohort is not None:
            _check_cohort(matcher, cohort)
        result = run_round(matcher, cohort, options)
    return state.store.create_round(
        options=options.model_dump(mode="json"),
        summary=RoundSummary.of(result).model_dump(mode="json"),
        result=result.model_dump(mode="json"),
        created_by=created_by,
    )


def _check_cohort(matcher: Matcher, cohort: Iterable[str]) -> None:
    ids = list(dict.fromkeys(cohort))
    unknown = [i for i in ids if i not in matcher.schools]
    inactive = [i for i in ids if i in matcher.schools and not matcher.schools[i].active]
    problems = []
    if unknown:
        problems.append(f"unknown school(s) {_listed(unknown)}")
    if inactive:
        problems.append(f"inactive school(s) {_listed(inactive)}")
    if problems:
        raise ApiError(422, f"cohort: {'; '.join(problems)}", field="cohort")


def accept_round(
    state: ServiceState,
    round_id: str,
    *,
    start_date: date | None = None,
    exclude: Sequence[PairRef] = (),
    note: str | None = None,
    accepted_by: str | None = None,
) -> tuple[StoredRound, list[Partnership]]:
    """Start the round's pairs (less `exclude`) as partnerships, if every one is still possible.
    409 names the pairs that are not (and nothing is written); a second accept is 409 too."""
    with state.writing():
        try:
            state.sync(force=True)
            stored = state.store.get_round(round_id)
            if stored.status != RoundStatus.PROPOSED:
                raise Conflict(f"status: round {round_id!r} was already accepted")
            assert stored.result is not None
            result = RoundResult.model_validate(stored.result)
            pairs = _without(result, exclude)
            with state.reading() as matcher:
                stale = stale_pairs(matcher, pairs)
            if stale:
                shown = "; ".join(stale[:SHOWN_PAIRS]) + (
                    f"; and {len(stale) - SHOWN_PAIRS} more" if len(stale) > SHOWN_PAIRS else ""
                )
                raise ApiError(409, f"pairs: {len(stale)} pair(s) no longer possible: {shown}", field="pairs")
            new = accept(pairs, start_date or date.today(), note=note or f"started by accepting round {round_id}")
            return state.store.accept_round(round_id, new, accepted_by=accepted_by)
        finally:
            state.sync(force=True)


def _without(result: RoundResult, exclude: Sequence[PairRef]) -> list[RoundPair]:
    keys = {_key(p.school_a, p.school_b) for p in exclude}
    known = {_key(p.school_a, p.school_b) for p in result.pairs}
    strangers = sorted(keys - known)
    if strangers:
        raise ApiError(
            422, f"exclude: not pairs of this round: {_listed(f'{a}–{b}' for a, b in strangers)}", field="exclude"
        )
    return [p for p in result.pairs if _key(p.school_a, p.school_b) not in keys]


def stale_pairs(matcher: Matcher, pairs: Sequence[RoundPair]) -> list[str]:
    """Each pair that breaks a hard rule now, with why: the pair rules both ways round, and the
    places each school has left against the number of the round's pairs it is in (pair_check's
    own capacity rule looks at one pair at a time, so it is left to this count)."""
    wanted = Counter(school for pair in pairs for school in (pair.school_a, pair.school_b))
    short: dict[str, str] = {}
    for school_id, needed in wanted.items():
        school = matcher.schools.get(school_id)
        if school is None:
            short[school_id] = f"{school_id} is unknown"
        elif (free := remaining_capacity(matcher, school)) < needed:
            short[school_id] = f"{school_id} has {free} free place(s) for {needed} pair(s)"
    stale = []
    for pair in pairs:
        why = [short[s] for s in (pair.school_a, pair.school_b) if s in short]
        if not any(s not in matcher.schools for s in (pair.school_a, pair.school_b)):
            broken, _ = pair_check(matcher, matcher.schools[pair.school_a], matcher.schools[pair.school_b])
            why += [rule.value for rule in broken if rule != Rule.AT_CAPACITY]
        if why:
            stale.append(f"{pair.school_a}–{pair.school_b} ({', '.join(why)})")
    return stale


def _key(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a < b else (b, a)


def _listed(items: Iterable[str], limit: int = 20) -> str:
    shown = list(items)
    return ", ".join(shown[:limit]) + (f" and {len(shown) - limit} more" if len(shown) > limit else "")
