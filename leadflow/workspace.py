"""Everything a run works on, built once from the settings: state store, lake, configuration."""

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import select

from leadflow.config import LeadflowConfig, load_config
from leadflow.lake import EventLake
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
    rejects_dir: Path

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> "Workspace":
        settings = settings or get_settings()
        config = load_config(settings.config)  # fail on a bad config before touching any data
        return cls(
            engine=get_engine(settings.database_url),
            lake=EventLake(settings.lake),
            config=config,
            expectations_dir=settings.expectations,
            rejects_dir=settings.rejects_dir,
        )

    @classmethod
    def in_folder(cls, database_url: str, folder: Path, config_path: Path) -> "Workspace":
        """A workspace of its own in `folder` (lake, rejects), its state store migrated: what the
        tests and the benchmarks build, without the environment's settings."""
        from leadflow.settings import PROJECT_ROOT
        from leadflow.store.db import make_engine, upgrade

        engine = make_engine(database_url)
        upgrade(engine)
        return cls(
            engine=engine,
            lake=EventLake(folder / "lake"),
            config=load_config(config_path),
            expectations_dir=PROJECT_ROOT / "expectations",
            rejects_dir=folder / "rejects",
        )

    @property
    def cache_path(self) -> Path:
        """The run cache (`leadflow.pipeline.runcache`): beside the lake, one per state store."""
        return cache_path(self.lake.root)

    def committed_event_batches(self) -> set[str]:
        """Ids of the event batches the state store has committed: the lake files that count."""
        with session_scope(self.engine) as session:
            return set(session.exec(select(IngestBatch.id).where(IngestBatch.kind == "events")))
