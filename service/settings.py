"""How the API runs, read from the environment (PARTNERMATCH_*), so a deployment needs no code change."""

from __future__ import annotations

from pathlib import Path

from limits import parse
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from data.settings import StorageSettings


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PARTNERMATCH_", extra="ignore")

    host: str = Field("127.0.0.1", description="Address uvicorn listens on")
    port: int = Field(8000, ge=1, le=65535, description="Port uvicorn listens on")
    invitation_expiry_days: float = Field(
        14, gt=0, le=365, description="An invitation left unanswered this long expires"
    )
    max_upload_bytes: int = Field(
        20 * 1024 * 1024, ge=1024, description="Largest request body accepted (bulk imports); larger ones get 413"
    )
    max_k: int = Field(50, ge=1, le=500, description="Most suggestions one request may ask for")
    change_poll_seconds: float = Field(
        2.0,
        ge=0,
        description="How often a replica looks for changes other replicas made (0: before every request)",
    )
    index_dir: Path | None = Field(None, description="Where the index is saved; default <data_dir>/index")
    failed_auth_limit: str = Field(
        "20/minute",
        description="Failed sign-ins (unknown or revoked key) allowed per client address and per key before 429; "
        "each worker process counts for itself, so `serve --workers N` allows up to N times this",
    )
    expensive_limit: str = Field(
        "60/minute",
        description="Rounds, imports and ad-hoc suggestions allowed per key and per client address; each worker "
        "process counts for itself, so `serve --workers N` allows up to N times this",
    )
    key_cache_seconds: float = Field(
        5.0,
        ge=0,
        le=300,
        description="A verified API key is trusted this long before the store is asked again: the longest a revoked "
        "key keeps working, on any worker process (each caches for itself)",
    )
    cors_origins: list[str] = Field(
        default_factory=list, description="Browser origins allowed to call the API (CORS); none by default"
    )

    @field_validator("failed_auth_limit", "expensive_limit")
    @classmethod
    def _rate(cls, value: str) -> str:
        try:
            parse(value)
        except ValueError:
            raise ValueError(f"not a rate such as 20/minute or 100 per hour (got {value!r})") from None
        return value

    def resolved_index_dir(self, storage: StorageSettings) -> Path:
        return self.index_dir or storage.data_dir / "index"
