"""Where schools and partnerships live: SQLite by default, PostgreSQL for several API replicas.

:class:`Store` is the front callers hold (``from data.store import Store``); behind it,
``engine`` makes the engine and its transactions (every write holds the database's write lock
from its first statement, so writers never interleave and change-log seqs become visible in
order), and one module of plain functions per table group takes a connection: ``schools``,
``changes`` (the change log), ``partnerships``, ``invitations``, ``keys``, ``rounds`` (and their
jobs), ``exposure``, ``stats`` (with meta values).
"""

from data.store.changes import INVITATION_OPS, PARTNERSHIP_OPS, SCHOOL_OPS
from data.store.engine import normalize_url
from data.store.front import Store
from data.store.invitations import InvitationTally
from data.store.keys import ApiKeyRecord
from data.store.rounds import RoundJob
from data.store.schools import SchoolFilters, UpsertCounts

__all__ = [
    "INVITATION_OPS",
    "PARTNERSHIP_OPS",
    "SCHOOL_OPS",
    "ApiKeyRecord",
    "InvitationTally",
    "RoundJob",
    "SchoolFilters",
    "Store",
    "UpsertCounts",
    "normalize_url",
]
