"""Matching rounds in the service: run one as a background job over a snapshot, keep it, accept it.

The API (POST /v1/rounds) and the staff page both submit a job and answer at once; the staff page
shows the job's stage and progress until the round is stored.

A round over thousands of schools takes seconds to minutes of CPU. It never holds a lock another
request needs and never competes for this process's interpreter: the Matcher is written to a
temporary folder (ServiceState.save_snapshot, under the writer mutex only for that moment) and a
child process at lower CPU priority, from its first instruction (its imports alone are seconds of
CPU), loads it, solves the round and serialises it to a file there. The child never takes the
database's write lock for long: a process at low priority holding it would be descheduled
while every writer (a profile edit) waits on it. So this process, at full priority, stores the
serialised round; the write lock is held only while its bytes are written. The job's status,
stage and progress live in the store, so every worker process can report it.

A round is a proposal staff review, often hours or days before they accept it; meanwhile schools
answer invitations, fill places, change profiles; a snapshot is older still. Accepting therefore
checks every pair again against the network as it is now, inside ``state.changing()`` (as
accepting an invitation does), and writes nothing unless every pair is still possible: the
partnerships and the round's new status commit in one transaction, and the Matcher catches up so
the next suggestion sees them.

Reading a stored round must not stall the worker either: its result's JSON is parsed once per
process and kept for the next reads (a result never changes once stored; only the round's small
status columns do, and those are read fresh each time), and a reader validates only what it shows:
one page of pairs (:func:`pairs_page`, which the staff page uses too) and the comparison.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import pickle
import re
import sys
import tempfile
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from cachetools import LRUCache

from data.errors import Conflict, NotFound
from data.schema import Partnership, RoundStatus, School, StoredRound
from data.store import RoundJob, Store
from embeddings import EmbeddingSettings
from matching.constraints import Rule
from matching.engine import Matcher
from matching.rounds import RoundOptions, RoundPair, RoundResult, accept, remaining_capacity, run_round
from matching.settings import MatchSettings
from service.errors import ApiError
from service.i18n import N_
from service.invitations import pair_check
from service.models import PairRef, RoundPairPage, RoundSummary
from service.state import ServiceState, load_snapshot

log = logging.getLogger("partnermatch.service")

SHOWN_PAIRS = 50
INTERRUPTED = "interrupted: the server stopped before the round was done; start it again"

Progress = Callable[[str, float], None]
_DECODER = json.JSONDecoder()
_SPACE = re.compile(r"[ \t\n\r]*")

# A round takes the cores for its length: one at a time per process, the others wait queued.
_one_round_at_a_time = threading.Lock()
# The round's process yields the CPU to the server's requests (nice(2) increment).
ROUND_NICENESS = 10
LOWEST_PRIORITY = 19  # the highest nice value
# In the job's temporary folder: the child's serialised round, for this process to store.
ROUND_ROW_FILE = "round-row.pickle"
# How often a job's thread looks whether the service is closing while its child solves.
JOIN_SECONDS = 0.5
# Parsed round results kept per process (a 10k-school round is ~16 MB of JSON, more once parsed).
PARSED_ROUNDS_KEPT = 2
_parsed: LRUCache[tuple[str, str], Mapping[str, Any]] = LRUCache(maxsize=PARSED_ROUNDS_KEPT)
_parsed_guard = threading.Lock()


@dataclass(frozen=True)
class RoundTask:
    """Everything a process needs to run one round (picklable: it crosses to the child)."""

    snapshot: Path
    cohort: Sequence[str] | None
    options: RoundOptions
    created_by: str | None
    round_id: str | None
    database_url: str
    embedding: EmbeddingSettings
    embedding_cache_dir: Path
    match: MatchSettings
    niceness: int  # the child's nice value: ROUND_NICENESS above the server's


def submit(
    state: ServiceState, cohort: Sequence[str] | None, options: RoundOptions, *, created_by: str | None
) -> RoundJob:
    """Queue a round as a background job and return it at once (its id is the round's to be). The
    cohort is checked first, so a bad one is refused (422) right away rather than as a failed job."""
    if cohort is not None:
        with state.reading() as matcher:
            _check_cohort(matcher, cohort)
    job = state.store.create_round_job(created_by=created_by)
    worker = threading.Thread(
        target=_run_job, args=(state, job.id, cohort, options, created_by), name=f"round-{job.id}", daemon=True
    )
    worker.start()
    return job


def propose(task: RoundTask, store: Store, progress: Progress | None = None) -> dict[str, Any]:
    """Load the snapshot and run the round: its row, serialised for :meth:`Store.insert_round`
    (nothing is written here)."""
    report = progress or (lambda stage, fraction: None)
    report(N_("loading the snapshot"), 0.1)
    matcher = load_snapshot(task.snapshot, store, task.embedding, task.embedding_cache_dir, task.match)
    report(N_("finding candidates and solving"), 0.2)
    result = run_round(matcher, task.cohort, task.options)
    report(N_("storing the proposal"), 0.95)
    _, row = store.prepare_round(
        options=task.options.model_dump(mode="json"),
        summary=RoundSummary.of(result).model_dump(mode="json"),
        result=result.model_dump(mode="json"),
        created_by=task.created_by,
        round_id=task.round_id,
    )
    return row


def _task(
    state: ServiceState,
    folder: Path,
    cohort: Sequence[str] | None,
    options: RoundOptions,
    created_by: str | None,
    round_id: str | None,
) -> RoundTask:
    return RoundTask(
        folder,
        list(cohort) if cohort is not None else None,
        RoundOptions.model_validate(options.model_dump()),  # the API's strict copy of the class does not pickle
        created_by,
        round_id,
        state.store.url,
        state.embedding,
        state.embedding_cache_dir,
        state.match,
        min(os.getpriority(os.PRIO_PROCESS, 0) + ROUND_NICENESS, LOWEST_PRIORITY),
    )


def _run_job(
    state: ServiceState, job_id: str, cohort: Sequence[str] | None, options: RoundOptions, created_by: str | None
) -> None:
    """Run the job in a child process and wait for it (the child reports its own progress), then
    store the round it serialised."""
    try:
        with _one_round_at_a_time, tempfile.TemporaryDirectory(prefix="partnermatch-round-") as folder:
            if state.stopping:
                raise RuntimeError(INTERRUPTED)
            state.store.update_round_job(job_id, status="running", stage=N_("copying the index"), progress=0.05)
            state.save_snapshot(Path(folder))
            task = _task(state, Path(folder), cohort, options, created_by, job_id)
            child = multiprocessing.get_context("spawn").Process(
                target=_solve_in_child,
                args=(task,),
                name=f"partnermatch-round-{job_id}",
                daemon=True,  # a server that stops takes its rounds along; the next `serve` reports them
            )
            _start_below_the_server(child, task.niceness)
            while child.is_alive():
                child.join(JOIN_SECONDS)
                if state.stopping:  # the service closes: its rounds end with it
                    child.terminate()
                    child.join()
                    raise RuntimeError(INTERRUPTED)
            if child.exitcode != 0:
                raise RuntimeError(f"the round's process ended with exit code {child.exitcode}")
            with (Path(folder) / ROUND_ROW_FILE).open("rb") as handle:
                row = pickle.load(handle)  # strings and dates only, written by our own child
            state.store.insert_round(row)
        state.store.update_round_job(job_id, status="done", stage="done", progress=1.0)
    except Exception as exc:  # the job reports it; the server goes on
        try:
            state.store.get_round(job_id, result=False)
        except NotFound:
            log.exception("round %s failed", job_id)
            state.store.update_round_job(job_id, status="failed", stage="failed", progress=1.0, error=str(exc))
        else:  # stopped after the round was stored, before the job was marked done
            state.store.update_round_job(job_id, status="done", stage="done", progress=1.0)


def _start_below_the_server(child: BaseProcess, niceness: int) -> None:
    """Start the child at nice value `niceness`. On Linux a thread's nice value is its own and a
    process started from a thread inherits it, so a short-lived thread lowers its own and starts
    the child: the child's imports already yield to the server, and the server keeps its
    priority. Elsewhere nice applies to the whole process, so the child lowers itself once
    running (:func:`_solve_in_child`)."""
    if sys.platform != "linux":
        child.start()
        return

    def start() -> None:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), niceness)
        child.start()

    starter = threading.Thread(target=start, name=f"{child.name}-start")
    starter.start()
    starter.join()


def _solve_in_child(task: RoundTask) -> None:
    """The child's whole life: below the server's CPU priority, solve, and leave the serialised
    round in the job's folder for the server to store; say how it went."""
    if task.niceness > os.getpriority(os.PRIO_PROCESS, 0):  # not started lowered already (not Linux)
        os.setpriority(os.PRIO_PROCESS, 0, task.niceness)
    assert task.round_id is not None
    job_id = task.round_id
    with Store(task.database_url) as store:

        def progress(stage: str, fraction: float) -> None:
            store.update_round_job(job_id, status="running", stage=stage, progress=fraction)

        try:
            row = propose(task, store, progress)
            with (task.snapshot / ROUND_ROW_FILE).open("wb") as handle:
                pickle.dump(row, handle, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            message = exc.detail if isinstance(exc, ApiError) else f"{type(exc).__name__}: {exc}"
            store.update_round_job(job_id, status="failed", stage="failed", progress=1.0, error=message)
            raise


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
    with state.changing() as store:
        stored = store.get_round(round_id, result=False)
        if stored.status != RoundStatus.PROPOSED:
            raise Conflict(f"status: round {round_id!r} was already accepted")
        pairs = _without(proposal(store, round_id), exclude)
        with state.reading() as matcher:
            stale = stale_pairs(matcher, pairs)
        if stale:
            shown = "; ".join(stale[:SHOWN_PAIRS]) + (
                f"; and {len(stale) - SHOWN_PAIRS} more" if len(stale) > SHOWN_PAIRS else ""
            )
            raise ApiError(409, f"pairs: {len(stale)} pair(s) no longer possible: {shown}", field="pairs")
        new = accept(pairs, start_date or date.today(), note=note or f"started by accepting round {round_id}")
        return store.accept_round(round_id, new, accepted_by=accepted_by)


def stored_result(store: Store, round_id: str) -> Mapping[str, Any]:
    """The round's result as plain JSON values, parsed once per process and kept (the latest
    few rounds); readers validate only what they show (a page of pairs, the comparison), since
    validating a whole big round into models takes the worker's CPU for seconds. A stored
    result never changes. NotFound when there is no such round. Shared: never change it."""
    key = (store.url, round_id)
    with _parsed_guard:
        if (found := _parsed.get(key)) is not None:
            return found
    result = _loads_yielding(store.get_round_result_text(round_id))
    with _parsed_guard:
        _parsed[key] = result
    return result


def _loads_yielding(text: str) -> Any:
    """json.loads, with a JSON object's top-level arrays (a round's pairs) parsed one element at a
    time. One json.loads of a 16 MB round holds the interpreter for 0.3-0.7 s, and every request
    of this process (a PATCH too) stalls that long; between the small parses the other threads
    get their turn (measured: the worst stall of a busy thread fell from 280-500 to 130-150 ms)."""
    i = _SPACE.match(text, 0).end()
    if not text.startswith("{", i):
        return json.loads(text)
    found: dict[str, Any] = {}
    i = _SPACE.match(text, i + 1).end()
    while not text.startswith("}", i):
        key, i = _DECODER.raw_decode(text, i)
        i = _SPACE.match(text, i).end()
        if not text.startswith(":", i):
            raise json.JSONDecodeError("expected ':'", text, i)
        i = _SPACE.match(text, i + 1).end()
        if text.startswith("[", i):
            value, i = _array(text, i)
        else:
            value, i = _DECODER.raw_decode(text, i)
        found[key] = value
        i = _SPACE.match(text, i).end()
        if text.startswith(",", i):
            i = _SPACE.match(text, i + 1).end()
        elif not text.startswith("}", i):
            raise json.JSONDecodeError("expected ',' or '}'", text, i)
    return found


def _array(text: str, i: int) -> tuple[list[Any], int]:
    items: list[Any] = []
    i = _SPACE.match(text, i + 1).end()
    while not text.startswith("]", i):
        item, i = _DECODER.raw_decode(text, i)
        items.append(item)
        i = _SPACE.match(text, i).end()
        if text.startswith(",", i):
            i = _SPACE.match(text, i + 1).end()
        elif not text.startswith("]", i):
            raise json.JSONDecodeError("expected ',' or ']'", text, i)
    return items, i + 1


def proposal(store: Store, round_id: str) -> RoundResult:
    """The round's whole result as models (accepting and the staff page need all of it)."""
    return RoundResult.model_validate(stored_result(store, round_id))


def matching_pairs(
    pairs: Sequence[Mapping[str, Any]],
    schools: Mapping[str, School],
    *,
    country: str | None = None,
    region: str | None = None,
) -> Sequence[Mapping[str, Any]]:
    """The stored pairs with a school in `country` and one in `region` (either side; a school
    missing from `schools` matches no filter); all of them when neither is given."""

    def shown(pair: Mapping[str, Any]) -> bool:
        sides = [schools.get(pair["school_a"]), schools.get(pair["school_b"])]
        return (not country or any(s is not None and s.country == country for s in sides)) and (
            not region or any(s is not None and s.region == region for s in sides)
        )

    return [p for p in pairs if shown(p)] if country or region else pairs


def pairs_page(
    pairs: Sequence[Mapping[str, Any]],
    schools: Mapping[str, School],
    *,
    country: str | None = None,
    region: str | None = None,
    offset: int = 0,
    limit: int,
) -> RoundPairPage:
    """The stored pairs with a school in `country` and one in `region` (:func:`matching_pairs`),
    `limit` of them from `offset` on, with how many match. Only the page's pairs are validated."""
    matching = matching_pairs(pairs, schools, country=country, region=region)
    items = [RoundPair.model_validate(p) for p in matching[offset : offset + limit]]
    return RoundPairPage(items=items, total=len(matching), offset=offset, limit=limit)


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
