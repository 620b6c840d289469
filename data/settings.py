"""Where data lives. Read from the environment (PARTNERMATCH_*), so a deployment needs no code change."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class StorageSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PARTNERMATCH_", extra="ignore")

    data_dir: Path = Field(Path("var"), description="Folder for the SQLite file, the index and the embedding cache")
    database_url: str | None = Field(
        None,
        validation_alias=AliasChoices("PARTNERMATCH_DATABASE_URL", "DATABASE_URL"),
        description="SQLAlchemy URL; PostgreSQL for several API replicas. Default: SQLite under data_dir",
    )

    @property
    def url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'partnermatch.db').as_posix()}"
