"""Errors the data layer raises, each naming what was wrong so callers can show it as is."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RowError:
    """One bad value in an imported file: where it is and why it was refused."""

    line: int
    field: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.field}: {self.reason}"


class ImportRejected(ValueError):
    """A file had bad rows; nothing from it was written."""

    def __init__(self, source: str, errors: list[RowError]) -> None:
        self.source = source
        self.errors = errors
        shown = "\n".join(f"  {e}" for e in errors[:50])
        more = f"\n  ... and {len(errors) - 50} more" if len(errors) > 50 else ""
        rows = len({e.line for e in errors})
        super().__init__(f"{source}: {rows} bad row(s), {len(errors)} problem(s), nothing written:\n{shown}{more}")


class NotFound(KeyError):
    """An id that names nothing in the store."""

    def __init__(self, kind: str, key: str) -> None:
        self.kind = kind
        self.key = key
        super().__init__(f"{kind} {key!r} not found")

    def __str__(self) -> str:
        return self.args[0]


class Conflict(ValueError):
    """A write that contradicts what is stored (duplicate id, ended partnership ended again)."""
