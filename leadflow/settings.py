"""Environment settings, read once: where the state database, the event lake and the config live."""

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_HOME = Path(".leadflow")
# The complete, commented example configuration: the demo's, and what `leadflow init` copies.
EXAMPLE_CONFIG = PROJECT_ROOT / "leadflow.yaml"


class Settings(BaseSettings):
    """`LEADFLOW_*` environment variables; defaults give a zero-set-up local install."""

    model_config = SettingsConfigDict(env_prefix="LEADFLOW_", extra="ignore")

    database_url: str = f"sqlite:///{DEFAULT_HOME / 'leadflow.db'}"
    lake: Path = DEFAULT_HOME / "lake"
    # New files for the daily flow; each is moved to processed/ or rejected/ once ingested.
    inbox: Path = DEFAULT_HOME / "inbox"
    config: Path = Path("leadflow.yaml")
    expectations: Path = PROJECT_ROOT / "expectations"
    # A Dask scheduler (tcp://host:8786): the days' partitions run on its workers (README: A
    # Dask cluster); unset, in this process.
    dask_address: str | None = None

    @property
    def rejects_dir(self) -> Path:
        """Reports of rejected batches live beside the lake, outside the state database."""
        return self.lake.parent / "rejects"


def get_settings() -> Settings:
    """Read the environment now (cheap): a changed variable is seen by the next call."""
    return Settings()
