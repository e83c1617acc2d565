"""Everything a run works on, built once from the settings: state store, lake, configuration."""

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import select

from leadflow.config import LeadflowConfig, load_config
from leadflow.lake import EventLake, open_lake
from leadflow.pipeline.runcache import cache_path
from leadflow.settings import Settings, get_settings
from leadflow.store.db import get_engine, session_scope
from models import IngestBatch


@dataclass(frozen=True)
class Workspace:
    engine: Engine
    lake: EventLake
    config: LeadflowConfig
    expectations_dir: Path
    # What stays on this machine: rejects' reports, pulled HubSpot pages (the lake's own
    # staging and run cache are in `lake.local`).
    local_dir: Path

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> "Workspace":
        settings = settings or get_settings()
        config = load_config(settings.config)  # fail on a bad config before touching any data
        return cls(
            engine=get_engine(settings.database_url),
            lake=open_lake(settings.lake, settings.lake_local),
            config=config,
            expectations_dir=settings.expectations,
            local_dir=settings.local_folder,
        )

    @classmethod
    def in_folder(
        cls, database_url: str, folder: Path, config_path: Path, lake: str | None = None
    ) -> "Workspace":
        """A workspace of its own in `folder` (lake, rejects), its state store migrated: what the
        tests and the benchmarks build, without the environment's settings. `lake`: an
        `s3://` URL instead of `folder/lake` (its staging and run cache then in `folder/lake`)."""
        from leadflow.settings import PROJECT_ROOT
        from leadflow.store.db import make_engine, upgrade

        engine = make_engine(database_url)
        upgrade(engine)
        return cls(
            engine=engine,
            lake=open_lake(lake or folder / "lake", folder / "lake"),
            config=load_config(config_path),
            expectations_dir=PROJECT_ROOT / "expectations",
            local_dir=folder,
        )

    @property
    def rejects_dir(self) -> Path:
        """Reports of rejected batches: on this machine, outside the state database."""
        return self.local_dir / "rejects"

    @property
    def cache_path(self) -> Path:
        """The run cache (`leadflow.pipeline.runcache`): in the lake's local folder, one per
        state store."""
        return cache_path(self.lake.local)

    def committed_event_batches(self) -> set[str]:
        """Ids of the event batches the state store has committed: the lake files that count."""
        with session_scope(self.engine) as session:
            return set(session.exec(select(IngestBatch.id).where(IngestBatch.kind == "events")))
