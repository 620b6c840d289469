"""The service's live state: the store, and the Matcher that suggestions read, kept current.

Every write goes to the store first, through one door: ``with state.changing() as store:`` holds
the writer mutex, catches the Matcher up before (so checks see the latest state) and after (so the
next suggestion sees the write), also when the write fails. The store's change log is the one
source of what changed, whether this replica or another one wrote it: :meth:`ServiceState.catch_up`
reads the log since the last applied seq and applies it to the Matcher (one profile re-embedded and
moved in the index, one edge added or ended, invitation counts refreshed). Changes other replicas
(or worker processes) make are applied by a background follower thread every
``change_poll_seconds``; a request never writes or re-embeds on its own thread.

Readers (suggestions, pair checks) and live updates are exclusive through a readers-writer lock,
held only for the short moments of a lookup or an update: long jobs (matching rounds) work on a
snapshot (:meth:`ServiceState.save_snapshot`) in their own process and hold no lock another
request needs. A full rebuild
(``partnermatch index rebuild``, a changed embedding recipe, a cleared store, a bulk import) builds
a new Matcher aside while readers use the old one, saves it, then swaps the reference.

The Matcher is saved under the index dir as numbered snapshots with the change seq in their
metadata; ``current`` names the newest. On start the saved one is loaded and caught up with the
changes since its seq (profiles re-embedded from the embedding cache), else everything is built;
every build is saved at once, so a crash never costs a second rebuild. ``index_origin`` says
truly which of the two happened.

Exposure counts (how often each school was shown) are shared through the store: the follower adds
this replica's counts since its last turn and reads back the schools any replica's writes touched
since then (graph.share_exposure), so lists are balanced across all replicas.
"""

from __future__ import annotations

import gc
import logging
import os
import secrets
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import graph
from data.errors import Conflict, NotFound
from data.schema import Partnership, School
from data.settings import StorageSettings
from data.store import Store
from embeddings import EmbeddingSettings, ProfileEmbedder, RecipeMismatch, make_embedder
from embeddings.embedder import EmbeddingStats
from matching.engine import Matcher
from matching.ranker import load_ranker
from matching.settings import MatchSettings
from service.locks import ReadWriteLock
from service.settings import ServiceSettings

log = logging.getLogger("partnermatch.service")

POINTER_FILE = "current"
SNAPSHOT_PREFIX = "snapshot-"
KEEP_SNAPSHOTS = 2
INSTANCE_KEY = "instance_id"
# More changed profiles than this at once (a bulk import): rebuilding aside, while readers keep
# the old Matcher, beats moving them one by one under the write lock.
REBUILD_ABOVE = 2000
# The follower's shortest turn (change_poll_seconds=0 means as often as this).
MIN_POLL_SECONDS = 0.05

Report = Callable[[str], None]
Change = tuple[int, str, str, str]


class IndexNotReady(RuntimeError):
    """The Matcher is still being loaded or built."""


@dataclass(frozen=True)
class StartProgress:
    """How far a start is: loading a saved index, encoding profiles (`encoded` of `total`, the
    long part of a first start), or failed (`error` says why)."""

    status: Literal["loading", "indexing", "failed"]
    encoded: int = 0
    total: int = 0
    error: str | None = None

    @property
    def detail(self) -> str:
        """The sentence a client shows: what is happening and what to do."""
        if self.status == "failed":
            return self.error or "index: could not be loaded or built"
        if self.status == "indexing":
            return (
                f"index: still being built, {self.encoded:,} of {self.total:,} profiles encoded; try again in a moment"
            )
        return "index: still loading; try again in a moment"


class ServiceState:
    def __init__(
        self,
        store: Store,
        *,
        settings: ServiceSettings,
        index_dir: Path,
        embedding: EmbeddingSettings,
        embedding_cache_dir: Path,
        match: MatchSettings,
    ) -> None:
        self.store = store
        self.settings = settings
        self.index_dir = index_dir
        self.embedding = embedding
        self.embedding_cache_dir = embedding_cache_dir
        self.match = match
        self.seq = 0
        self.index_origin: str | None = None
        self.start_error: str | None = None
        self._matcher: Matcher | None = None
        self._lock = ReadWriteLock()
        self._writers = threading.RLock()
        self._rebuilding = threading.Lock()
        self._stopping = threading.Event()
        self._follower: threading.Thread | None = None
        self._saved_seq: int | None = None
        self._instance_id = _instance_id(store)
        self._graph_report: tuple[int, int, dict[str, Any], list[graph.Cluster]] | None = None
        # While a build encodes: its embedder's counters and how many active profiles it embeds.
        self._encoding: tuple[EmbeddingStats, int] | None = None
        self._starter: threading.Thread | None = None
        self._starter_lock = threading.Lock()

    @classmethod
    def open(
        cls,
        storage: StorageSettings | None = None,
        settings: ServiceSettings | None = None,
        *,
        embedding: EmbeddingSettings | None = None,
        match: MatchSettings | None = None,
        embedding_cache_dir: Path | None = None,
    ) -> ServiceState:
        """A state on the store and data dir the settings name (the index is not loaded yet)."""
        storage = storage or StorageSettings()
        settings = settings or ServiceSettings()
        embedding = embedding or EmbeddingSettings()
        cache_dir = embedding_cache_dir or embedding.cache_dir or storage.data_dir / "embedding-cache"
        return cls(
            Store.from_settings(storage),
            settings=settings,
            index_dir=settings.resolved_index_dir(storage),
            embedding=embedding,
            embedding_cache_dir=cache_dir,
            match=match or MatchSettings(),
        )

    # ------------------------------------------------------------------ reading

    @property
    def ready(self) -> bool:
        return self._matcher is not None

    def progress(self) -> StartProgress:
        """Where a start that is not ready yet is (what /readyz and the staff page show meanwhile)."""
        if self.start_error is not None:
            return StartProgress("failed", error=self.start_error)
        encoding = self._encoding
        if encoding is None:
            return StartProgress("loading")
        stats, total = encoding
        return StartProgress("indexing", encoded=min(total, stats.encoded + stats.cache_hits), total=total)

    def not_ready(self) -> IndexNotReady:
        """The error a request that needs the index meets before it is ready, saying how far it is."""
        return IndexNotReady(self.progress().detail)

    @property
    def stopping(self) -> bool:
        """close() was called: background work (round jobs) should end."""
        return self._stopping.is_set()

    @contextmanager
    def reading(self) -> Iterator[Matcher]:
        """The current Matcher, held against live updates for the duration: keep it short (a
        lookup, one suggestion). Long work takes a :meth:`snapshot` instead."""
        with self._lock.reading():
            if self._matcher is None:
                raise self.not_ready()
            yield self._matcher

    @contextmanager
    def changing(self) -> Iterator[Store]:
        """The one way to write: serialised with this replica's other writers, the Matcher caught
        up first (a check inside reads the latest state) and again on the way out, also on error,
        so the writer's next request sees its write. (A bulk change is built aside: readers go on
        with the current Matcher meanwhile.)"""
        with self._writers:
            self._catch_up()
            try:
                yield self.store
            finally:
                self._catch_up()

    def catch_up(self) -> int:
        """Apply the store's changes since the last applied seq (sweeping overdue invitations
        first); what the follower does every ``change_poll_seconds``. Returns how many applied."""
        with self._writers:
            return self._catch_up()

    def save_snapshot(self, folder: Path) -> None:
        """Write the Matcher to `folder` for long work elsewhere (a matching round, in its own
        process): the writer mutex is held only while it is written, never the readers' lock.
        :func:`load_snapshot` reads it back."""
        with self._writers:
            if self._matcher is None:
                raise self.not_ready()
            self._matcher.save(folder)

    @property
    def ranking(self) -> str:
        """Which score ranks candidates: the trained ranker when one is loaded, else the hand-weighted one."""
        matcher = self._matcher
        return "trained" if matcher is not None and matcher.ranker is not None else "hand-weighted"

    def indexed(self, school_id: str) -> bool:
        """Whether the index holds this school's vector (a suggestion for it then reads memory only).
        A peek without the lock: it only decides where a request runs, and the answer is read under it."""
        matcher = self._matcher
        return matcher is not None and any(school_id in index for index in matcher.indexes.values())

    def index_size(self) -> dict[str, int]:
        matcher = self._matcher
        return {side: len(index) for side, index in matcher.indexes.items()} if matcher else {}

    def graph_report(self) -> tuple[dict[str, Any], list[graph.Cluster]]:
        """graph_summary and the cross-border clusters, computed once per change seq (Louvain is
        the slow part of the staff statistics)."""
        with self.reading() as matcher:
            cached = self._graph_report
            if cached is not None and cached[:2] == (self.seq, id(matcher)):
                return cached[2], cached[3]
            summary = graph.graph_summary(matcher.partnerships)
            clusters = graph.cross_border_clusters(matcher.partnerships)
            self._graph_report = (self.seq, id(matcher), summary, clusters)
        return summary, clusters

    # ------------------------------------------------------------------ start, rebuild, save

    def start(self, report: Report = log.info) -> str:
        """Load the saved index and catch up on the changes since it was saved, or build one (and
        save it at once); then start following the change log. Returns how the index was made:
        "loaded" or "built" (also when a loaded one had to be rebuilt to catch up)."""
        with self._writers:
            loaded = self._load_saved(report)
            if loaded is None:
                report("building the index (profiles come from the embedding cache where possible)")
                matcher, seq = self._build()
                origin = "built"
            else:
                matcher, seq = loaded
                origin = "loaded"
            matcher, seq, applied, rebuilt = self._caught_up(matcher, seq, report)
            if rebuilt:
                origin = "built"
            if origin == "built" or applied:
                self._save(matcher, seq)
            self._install(matcher, seq)
            self.index_origin = origin
        report(f"index {origin}: {sum(self.index_size().values())} active schools, change seq {self.seq}")
        self.follow()
        return origin

    def start_in_background(self, report: Report = log.info) -> threading.Thread:
        """:meth:`start` in a thread (once, however often called), so a server answers at once:
        /readyz and the staff page say how far it is, other routes answer 503 until it is ready.
        A failure keeps the process up and :meth:`progress` says why."""
        with self._starter_lock:
            if self._starter is None:
                self._starter = threading.Thread(
                    target=self._start_reporting_failure, args=(report,), name="partnermatch-index", daemon=True
                )
                self._starter.start()
            return self._starter

    def _start_reporting_failure(self, report: Report) -> None:
        try:
            self.start(report)
        except Exception as exc:
            if self.stopping:  # the server stopped first and closed the store under the build
                log.info("index start abandoned: the service stopped")
                return
            log.exception("could not load or build the index")
            self.start_error = f"index: could not be loaded or built: {exc}"

    def rebuild(self, report: Report = log.info) -> None:
        """Build a new Matcher aside (readers keep the current one), catch it up, save, swap it in."""
        with self._rebuilding:
            report("rebuilding the index")
            matcher, seq = self._build()
            with self._writers:
                matcher, seq, _, _ = self._caught_up(matcher, seq, report)
                self._save(matcher, seq)
                self._install(matcher, seq)
                self.index_origin = "built"

    def save(self) -> Path:
        """Write the live Matcher as a new snapshot and point `current` at it; old snapshots go."""
        with self._writers:  # no live update while it is written; readers go on searching
            if self._matcher is None:
                raise IndexNotReady("index: nothing to save yet")
            return self._save(self._matcher, self.seq)

    def follow(self) -> None:
        """Start the follower thread (once, and not once the state is closing): it applies other
        replicas' changes and shares exposure counts every ``change_poll_seconds``."""
        if self._follower is not None or self.stopping:
            return
        self._follower = threading.Thread(target=self._follow, name="partnermatch-follower", daemon=True)
        self._follower.start()

    def close(self) -> None:
        """Stop following, share the last exposure counts, save what changed since the last save,
        then let go of the database."""
        self._stopping.set()
        follower, self._follower = self._follower, None
        if follower is not None:
            follower.join()
        if self._matcher is not None:
            self.share_exposure()
            if self._saved_seq != self.seq:
                self.save()
        self.store.close()

    def _follow(self) -> None:
        interval = max(self.settings.change_poll_seconds, MIN_POLL_SECONDS)
        while not self._stopping.wait(interval):
            try:
                self.catch_up()
                self.share_exposure()
            except Exception:  # the database may be briefly away; the next turn tries again
                log.exception("following the change log failed")

    def share_exposure(self) -> None:
        """Add what this replica showed since its last turn to the store's counts and take back
        every replica's (the follower does this every turn)."""
        matcher = self._matcher
        if matcher is not None and matcher.exposure is not None:
            graph.share_exposure(matcher.exposure, self.store)

    def _save(self, matcher: Matcher, seq: int) -> Path:
        """Save a Matcher no live update touches meanwhile (the caller holds the writer mutex, or
        nobody else has it yet)."""
        name = f"{SNAPSHOT_PREFIX}{seq:012d}-{secrets.token_hex(3)}"
        target = self.index_dir / name
        matcher.save(target, metadata={"change_seq": seq, INSTANCE_KEY: self._instance_id})
        pointer = self.index_dir / f".{POINTER_FILE}.{os.getpid()}.partial"
        pointer.write_text(name, encoding="utf-8")
        os.replace(pointer, self.index_dir / POINTER_FILE)
        self._saved_seq = seq
        self._prune_snapshots(keep=name)
        return target

    def _prune_snapshots(self, keep: str) -> None:
        snapshots = sorted(
            (p for p in self.index_dir.glob(f"{SNAPSHOT_PREFIX}*") if p.is_dir() and p.name != keep),
            key=lambda p: p.stat().st_mtime,
        )
        for old in snapshots[: max(0, len(snapshots) - (KEEP_SNAPSHOTS - 1))]:
            shutil.rmtree(old, ignore_errors=True)

    def _load_saved(self, report: Report) -> tuple[Matcher, int] | None:
        pointer = self.index_dir / POINTER_FILE
        if not pointer.is_file():
            return None
        snapshot = self.index_dir / pointer.read_text(encoding="utf-8").strip()
        try:
            meta = Matcher.saved_metadata(snapshot)
            if meta is None:
                raise FileNotFoundError(f"no matcher.json in {snapshot}")
            if meta.get(INSTANCE_KEY) != self._instance_id:
                report(f"saved index {snapshot.name} was built from another database; building anew")
                return None
            seq = int(meta["change_seq"])  # type: ignore[call-overload]
            if seq > self.store.latest_change_seq():
                report(f"saved index {snapshot.name} is newer than the database; building anew")
                return None
            matcher = Matcher.load(
                snapshot, self.store.iter_schools(), self.store.list_partnerships(), self._new_embedder(), self.match
            )
        except RecipeMismatch as exc:
            report(f"embedding recipe changed ({exc}); building anew")
            return None
        except (OSError, ValueError, KeyError) as exc:
            report(f"saved index {snapshot.name} unusable ({exc}); building anew")
            return None
        report(f"loaded saved index {snapshot.name} (change seq {seq})")
        return matcher, seq

    def _new_embedder(self) -> ProfileEmbedder:
        """One embedder per Matcher: fitting one changes its encoder, which a live Matcher uses."""
        return make_embedder(self.embedding, cache_dir=self.embedding_cache_dir)

    def _build(self) -> tuple[Matcher, int]:
        seq = self.store.latest_change_seq()  # read first: whatever commits later is caught up on
        schools = list(self.store.iter_schools())
        embedder = self._new_embedder()
        self._encoding = (embedder.stats, sum(1 for s in schools if s.active))
        try:
            matcher = Matcher.build(schools, self.store.list_partnerships(), embedder, self.match)
        finally:
            self._encoding = None
        return matcher, seq

    def _caught_up(self, matcher: Matcher, seq: int, report: Report) -> tuple[Matcher, int, int, bool]:
        """A Matcher nobody reads yet, brought up to the store's newest change: the Matcher, its
        seq, how many changes were applied, and whether it had to be built anew."""
        rebuilt = False
        while True:
            changes = self.store.all_changes_since(seq)
            if _needs_rebuild(changes):
                report(f"{len(changes)} changes since change seq {seq} include deletions or a bulk load; building anew")
                matcher, seq = self._build()
                rebuilt = True
                continue
            self._apply(matcher, changes, live=False)
            return matcher, (changes[-1][0] if changes else seq), len(changes), rebuilt

    def _install(self, matcher: Matcher, seq: int) -> None:
        if self._matcher is not None and self._matcher.exposure is not None:
            matcher.exposure = self._matcher.exposure  # what was shown outlives an index rebuild
        matcher.ranker = load_ranker(self.index_dir)  # the trained ranker when saved, else the hand-weighted score
        with self._lock.writing():
            self._matcher = matcher
            self.seq = seq
        _freeze_long_lived()

    # ------------------------------------------------------------------ live updates

    def _catch_up(self) -> int:
        """:meth:`catch_up` for a caller holding the writer mutex."""
        if self._matcher is None:
            return 0
        self.store.expire_invitations()
        changes = self.store.all_changes_since(self.seq)
        if not changes:
            return 0
        if _needs_rebuild(changes):
            matcher, seq = self._build()
            matcher, seq, _, _ = self._caught_up(matcher, seq, log.info)
            self._save(matcher, seq)  # before it serves: a crash now must not cost another rebuild
            self._install(matcher, seq)
            self.index_origin = "built"
        else:
            assert self._matcher is not None
            self._apply(self._matcher, changes, live=True)
            self.seq = changes[-1][0]
        return len(changes)

    def _apply(self, matcher: Matcher, changes: Sequence[Change], *, live: bool) -> None:
        """Read what the changes touched (outside the lock), then update the Matcher under it."""
        school_ids = list(dict.fromkeys(entity for _, kind, entity, _ in changes if kind == "school"))
        partnership_ids = list(dict.fromkeys(entity for _, kind, entity, _ in changes if kind == "partnership"))
        schools = self.store.get_schools(school_ids)
        partnerships = [self.store.get_partnership(pid) for pid in partnership_ids]
        refresh_invitations = not live or any(kind == "invitation" for _, kind, _, _ in changes)
        invitations = invitation_counts(self.store) if refresh_invitations else None
        if schools:
            matcher.embedder.text_vectors(list(schools.values()))  # encode now, so the lock is held for lookups only
        with self._lock.writing() if live else nullcontext():
            for school in schools.values():
                _apply_school(matcher, school)
            for partnership in partnerships:
                _apply_partnership(matcher, partnership)
            if invitations is not None:
                matcher.set_invitations(*invitations)


def _freeze_long_lived() -> None:
    """Move what is alive now (the index, table, graph and profiles) out of the cyclic collector's
    reach: otherwise each full collection walks every one of those objects, a pause of tens of ms at
    100k schools that lands on whichever request is running. Unfrozen first, so an index a rebuild
    replaced is collected before the new one is frozen."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def invitation_counts(store: Store) -> tuple[dict[str, int], dict[str, graph.InvitationCounts]]:
    """What Matcher.set_invitations takes, from the store: open invitations per school (they hold
    places) and each school's answer record."""
    tallies = store.invitation_tallies()
    pending = {sid: t.open for sid, t in tallies.items() if t.open}
    history = {
        sid: graph.InvitationCounts(received=t.received, answered=t.answered, expired=t.expired)
        for sid, t in tallies.items()
        if t.received
    }
    return pending, history


def load_snapshot(
    folder: Path, store: Store, embedding: EmbeddingSettings, embedding_cache_dir: Path, match: MatchSettings
) -> Matcher:
    """A Matcher from :meth:`ServiceState.save_snapshot`'s folder, with the store's profiles,
    partnerships and invitations as they are now (a little newer than the index, perhaps: whoever
    writes what it derives checks again first)."""
    matcher = Matcher.load(
        folder,
        store.iter_schools(),
        store.list_partnerships(),
        make_embedder(embedding, cache_dir=embedding_cache_dir),
        match,
    )
    matcher.set_invitations(*invitation_counts(store))
    return matcher


def _needs_rebuild(changes: Sequence[Change]) -> bool:
    deleted = any(op == "delete" for _, kind, _, op in changes if kind in ("school", "partnership"))
    schools = len({entity for _, kind, entity, _ in changes if kind == "school"})
    return deleted or schools > REBUILD_ABOVE


def _apply_school(matcher: Matcher, school: School) -> None:
    try:
        matcher.upsert_school(school)
    except (Conflict, ValueError) as exc:
        log.warning("school %s: live update not applied: %s", school.id, exc)


def _apply_partnership(matcher: Matcher, partnership: Partnership) -> None:
    """Make the graph agree with the stored partnership (idempotent: a change may be seen twice,
    e.g. after loading a snapshot whose graph was built from the current store)."""
    a, b = partnership.school_a, partnership.school_b
    edge = matcher.partnerships.edges[a, b] if matcher.partnerships.has_edge(a, b) else None
    same = edge is not None and edge["partnership_id"] == partnership.id
    try:
        if partnership.active and not same:
            matcher.add_partnership(partnership)
        elif not partnership.active and same and edge is not None and edge["end_date"] is None:
            matcher.end_partnership(partnership)
    except (Conflict, NotFound, ValueError) as exc:
        log.warning("partnership %s: live update not applied: %s", partnership.id, exc)


def _instance_id(store: Store) -> str:
    """Names the database a saved index was built from, so a data dir pointed at another database
    never serves that database's index."""
    current = store.get_meta(INSTANCE_KEY)
    if current is None:
        store.set_meta(INSTANCE_KEY, uuid.uuid4().hex)
        current = store.get_meta(INSTANCE_KEY)
    assert current is not None
    return current
