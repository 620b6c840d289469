"""What list endpoints share: opaque cursors (the id of the last item shown, so the next page
starts after it however rows are added meanwhile), the active/inactive/all filter, and strict
query numbers and switches."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BeforeValidator

from service.errors import ApiError

Item = TypeVar("Item")
Active = Literal["true", "false", "all"]
ACTIVE: dict[str, bool | None] = {"true": True, "false": False, "all": None}


def _whole_number(value: Any) -> Any:
    """A query integer written as one: "10", not "10.0" or "1e1" (pydantic would take both)."""
    if isinstance(value, str) and not re.fullmatch(r"[+-]?[0-9]+", value):
        raise ValueError(f"must be a whole number written as digits, e.g. 10 (got {value!r})")
    return value


def _switch(value: Any) -> Any:
    """A query switch is true or false, not 1, 0, yes, no, on or off."""
    if isinstance(value, str) and value.lower() not in ("true", "false"):
        raise ValueError(f"must be true or false (got {value!r})")
    return value


QueryInt = Annotated[int, BeforeValidator(_whole_number)]
QueryBool = Annotated[bool, BeforeValidator(_switch)]


def encode_cursor(last_id: str) -> str:
    return base64.urlsafe_b64encode(last_id.encode("utf-8")).decode("ascii").rstrip("=")


def decode_cursor(cursor: str | None) -> str | None:
    if cursor is None:
        return None
    try:
        last_id = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        last_id = ""
    if not last_id:
        raise ApiError(422, "cursor: not a cursor this service gave out", field="cursor")
    return last_id


def page(items: Sequence[Item], limit: int, key: Callable[[Item], str]) -> tuple[list[Item], str | None]:
    """Items fetched with limit + 1 -> (the page, the cursor for the next one or None)."""
    shown = list(items[:limit])
    return shown, (encode_cursor(key(shown[-1])) if len(items) > limit else None)
