"""School and Partnership: the two records everything else is computed from.

Validation rejects what a school administrator or a ministry file could get wrong, with a
message that names the field and the reason (pydantic puts the field in ``loc``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated, Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from data.taxonomies import (
    LEVEL_GRADES,
    NSP_COUNTRIES,
    ExchangeMode,
    Level,
    Ownership,
    Remoteness,
    derive_timezone,
    normalize_country,
    normalize_language,
    normalize_region,
)

SCHOOL_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
# Text no database here stores: PostgreSQL refuses NUL in text, and an unpaired UTF-16 surrogate
# (a JSON "\\ud800") cannot be encoded as UTF-8 for either SQLite or PostgreSQL.
_REFUSED_TEXT = re.compile("[\x00\ud800-\udfff]")


def refused_text(text: str) -> str | None:
    """Why a database would refuse this text, or None when it can be stored.

    >>> refused_text("a" + chr(0) + "b")
    'contains the character U+0000 (NUL), which cannot be stored'
    >>> refused_text("Haibin") is None
    True
    """
    found = _REFUSED_TEXT.search(text)
    if found is None:
        return None
    what = "NUL" if found[0] == "\x00" else "an unpaired surrogate"
    return f"contains the character U+{ord(found[0]):04X} ({what}), which cannot be stored"


def string_values(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(dotted path, text) of every string in a JSON-like value; a dict key counts as at its value's path.

    >>> list(string_values({"a": ["x", {"b": "y"}]}))
    [('a', 'a'), ('a.0', 'x'), ('a.1.b', 'b'), ('a.1.b', 'y')]
    """
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            inner = f"{path}.{key}" if path else str(key)
            if isinstance(key, str):
                yield inner, key
            yield from string_values(item, inner)
    elif isinstance(value, list | tuple):
        for number, item in enumerate(value):
            yield from string_values(item, f"{path}.{number}" if path else str(number))


def _country(value: str) -> str:
    return normalize_country(value)


def _language(value: str) -> str:
    return normalize_language(value)


CountryCode = Annotated[str, AfterValidator(_country)]
LanguageCode = Annotated[str, AfterValidator(_language)]
SdgGoal = Annotated[int, Field(ge=1, le=17)]
Grade = Annotated[int, Field(ge=1, le=12)]
Month = Annotated[int, Field(ge=1, le=12)]
SchoolId = Annotated[str, Field(pattern=SCHOOL_ID_PATTERN, examples=["tw-011301"])]


def _sorted_unique(values: list[Any]) -> list[Any]:
    return sorted(set(values))


def utcnow() -> datetime:
    return datetime.now(UTC)


# Fields only staff and the school itself may see: never in suggestions or public listings.
PRIVATE_FIELDS: frozenset[str] = frozenset({"contact_name", "contact_email", "address", "student_count_exact"})


class School(BaseModel):
    """A school's profile as the alliance keeps it."""

    model_config = ConfigDict(extra="forbid", validate_assignment=False, str_strip_whitespace=True)

    id: SchoolId
    name_local: str | None = Field(None, max_length=200, description="Official name in the local language")
    name_en: str | None = Field(None, max_length=200, description="Name in English")
    country: CountryCode = Field(description="ISO 3166-1 alpha-2 code", examples=["TW", "MY"])
    region: str | None = Field(
        None,
        description="ISO 3166-2 code where one exists (TW-TPE, MY-08), else the region as written",
        examples=["TW-TPE"],
    )
    district: str | None = Field(None, max_length=100)
    levels: list[Level] = Field(min_length=1)
    grades: list[Grade] = Field(default_factory=list, description="Grades served, 1-12; derived from levels if empty")
    ownership: Ownership | None = None
    student_count: int | None = Field(None, ge=0, le=100_000)
    languages_instruction: list[LanguageCode] = Field(default_factory=list, examples=[["zh"]])
    languages_exchange: list[LanguageCode] = Field(
        default_factory=list, description="Languages the school can run an exchange in", examples=[["en", "zh"]]
    )
    sdgs: list[SdgGoal] = Field(default_factory=list, description="UN Sustainable Development Goals, 1-17")
    target_countries: list[CountryCode] = Field(
        default_factory=list,
        description=(
            "Countries the school wants partners in. For Taiwanese schools this is their New "
            "Southbound focus; for foreign schools ['TW'] says they want a Taiwanese partner. "
            "Empty means no preference."
        ),
    )
    exchange_modes: list[ExchangeMode] = Field(default_factory=list)
    timezone: str | None = Field(None, description="IANA time zone; derived from country/region if omitted")
    capacity: int = Field(3, ge=0, le=100, description="How many active partners the school can take")
    visit_group_size: int | None = Field(None, ge=1, le=500, description="Usual group size for visits/hosting")
    preferred_months: list[Month] = Field(default_factory=list, description="Months suited to visits/hosting")
    description: str = Field("", max_length=5000)
    active: bool = True
    remoteness: Remoteness = Remoteness.ORDINARY
    latitude: float | None = Field(None, ge=-90, le=90)
    longitude: float | None = Field(None, ge=-180, le=180)
    website: str | None = Field(None, max_length=500)
    address: str | None = Field(None, max_length=500)
    contact_name: str | None = Field(None, max_length=200)
    contact_email: str | None = Field(None, max_length=200)
    source: str | None = Field(None, max_length=100, description="Where the record came from, e.g. moe-tw-113")
    generated_fields: list[str] = Field(
        default_factory=list, description="Fields filled by the generator rather than a real source"
    )
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)

    _unique = field_validator(
        "levels",
        "grades",
        "languages_instruction",
        "languages_exchange",
        "sdgs",
        "target_countries",
        "exchange_modes",
        "preferred_months",
        "generated_fields",
    )(_sorted_unique)

    @field_validator("website")
    @classmethod
    def _web_address(cls, value: str | None) -> str | None:
        """Shown as a link: only http(s), never javascript:, data: or file: addresses."""
        if value and (urlsplit(value).scheme.lower() not in ("http", "https") or not urlsplit(value).netloc):
            raise ValueError("must be an http:// or https:// address")
        return value or None

    @field_validator("contact_email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value):
            raise ValueError("not an e-mail address")
        return value or None

    @model_validator(mode="after")
    def _consistent(self) -> School:
        if not (self.name_local or self.name_en):
            raise ValueError("name_local and name_en are both empty: give at least one name")
        try:
            self.region = normalize_region(self.country, self.region)
        except ValueError as exc:
            raise ValueError(f"region: {exc}") from None
        if self.country in self.target_countries:
            raise ValueError(f"target_countries: {self.country} is the school's own country")
        if not self.grades:
            self.grades = sorted({g for level in self.levels for g in LEVEL_GRADES[level]})
        if self.timezone is None:
            self.timezone = derive_timezone(self.country, self.region, self.latitude, self.longitude)
        else:
            try:
                ZoneInfo(self.timezone)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"timezone: unknown IANA time zone {self.timezone!r}") from None
        if (self.latitude is None) != (self.longitude is None):
            raise ValueError("latitude and longitude: give both or neither")
        return self

    @property
    def display_name(self) -> str:
        return self.name_en or self.name_local or self.id

    @property
    def nsp_focus(self) -> list[str]:
        """The New Southbound countries among the school's targets."""
        return [c for c in self.target_countries if c in NSP_COUNTRIES]

    def content_hash(self) -> str:
        """Hash of what the profile says, not of when it was saved: equal profiles, equal hash."""
        payload = self.model_dump(mode="json", exclude={"created_at", "updated_at"})
        return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()

    def public_view(self) -> dict[str, Any]:
        """What anyone with portal access may see."""
        return self.model_dump(mode="json", exclude=set(PRIVATE_FIELDS))


class PartnershipOrigin(StrEnum):
    EXISTING = "existing"
    SUGGESTED = "suggested"


class Partnership(BaseModel):
    """Two schools working together. Cross-border by definition; active while end_date is null."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id: str | None = Field(None, description="Assigned by the store when omitted")
    school_a: SchoolId
    school_b: SchoolId
    start_date: date
    end_date: date | None = None
    modes: list[ExchangeMode] = Field(default_factory=list)
    sdgs: list[SdgGoal] = Field(default_factory=list)
    origin: PartnershipOrigin = PartnershipOrigin.EXISTING
    note: str | None = Field(None, max_length=1000)
    capacity_override: str | None = Field(
        None, max_length=64, description="The staff key that recorded it beyond a school's capacity; null if within"
    )

    _unique = field_validator("modes", "sdgs")(_sorted_unique)

    @model_validator(mode="after")
    def _consistent(self) -> Partnership:
        if self.school_a == self.school_b:
            raise ValueError(f"school_b: a school cannot partner with itself ({self.school_a})")
        if self.end_date is not None and self.end_date < self.start_date:
            raise ValueError("end_date: before start_date")
        return self

    @property
    def active(self) -> bool:
        return self.end_date is None

    @property
    def pair(self) -> tuple[str, str]:
        """The two ids in a canonical order, so (a, b) and (b, a) are the same partnership."""
        a, b = sorted((self.school_a, self.school_b))
        return a, b

    def check_schools(self, schools: dict[str, School]) -> None:
        """Reject partnerships with unknown schools or within one country (they must cross a border)."""
        for field in ("school_a", "school_b"):
            if getattr(self, field) not in schools:
                raise ValueError(f"{field}: unknown school {getattr(self, field)!r}")
        a, b = schools[self.school_a], schools[self.school_b]
        if a.country == b.country:
            raise ValueError(f"school_b: {a.id} and {b.id} are both in {a.country}; partnerships must cross a border")


class InvitationStatus(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    EXPIRED = "expired"


class Invitation(BaseModel):
    """One school asking another to partner: the two-sided step between a suggestion and a
    partnership. Open while pending; accepting it starts a Partnership (origin "suggested")."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id: str
    from_school: SchoolId
    to_school: SchoolId
    message: str | None = Field(None, max_length=2000)
    status: InvitationStatus = InvitationStatus.PENDING
    created_at: datetime
    expires_at: datetime = Field(description="Unanswered by then, the invitation expires")
    answered_at: datetime | None = Field(None, description="When it was accepted or declined")
    decline_reason: str | None = Field(None, max_length=1000)
    partnership_id: str | None = Field(None, description="The partnership an acceptance started")

    @model_validator(mode="after")
    def _consistent(self) -> Invitation:
        if self.from_school == self.to_school:
            raise ValueError(f"to_school: a school cannot invite itself ({self.from_school})")
        if self.expires_at <= self.created_at:
            raise ValueError("expires_at: not after created_at")
        return self

    def is_open(self, now: datetime) -> bool:
        """Pending and not yet past its deadline (an overdue one is expired, even before the sweep)."""
        return self.status == InvitationStatus.PENDING and self.expires_at > now


class RoundStatus(StrEnum):
    PROPOSED = "proposed"
    ACCEPTED = "accepted"


class StoredRound(BaseModel):
    """A matching round as the store keeps it. options, summary and result are the JSON of the
    matching layer's models (data imports nothing above it, so it keeps them as plain dicts)."""

    id: str
    created_at: datetime
    created_by: str | None = Field(None, description="id of the API key that started the round")
    status: RoundStatus = RoundStatus.PROPOSED
    accepted_at: datetime | None = None
    accepted_by: str | None = Field(None, description="id of the API key that accepted it")
    options: dict[str, Any]
    summary: dict[str, Any] = Field(description="the figures a list of rounds shows")
    result: dict[str, Any] | None = Field(None, description="None when listed (lists skip the full result)")
    partnership_ids: list[str] = Field(default_factory=list, description="partnerships accepting it started")
