"""Environment settings, read once: where the state database, the event lake and the config live."""

from pathlib import Path

from pydantic import ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from leadflow.errors import UserError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_HOME = Path(".leadflow")
# The complete, commented example configuration: the demo's, and what `leadflow init` copies.
EXAMPLE_CONFIG = PROJECT_ROOT / "leadflow.yaml"


class SettingsError(UserError):
    """A LEADFLOW_* variable that cannot be used."""


class Settings(BaseSettings):
    """`LEADFLOW_*` environment variables; defaults give a zero-set-up local install."""

    model_config = SettingsConfigDict(env_prefix="LEADFLOW_", extra="ignore")

    database_url: str = f"sqlite:///{DEFAULT_HOME / 'leadflow.db'}"
    # A folder, or `s3://bucket/prefix` for a lake in S3-compatible object storage.
    lake: str = str(DEFAULT_HOME / "lake")
    # What stays on this machine when the lake is remote (staging, the run cache, rejects'
    # reports, pulled HubSpot pages); with a local lake, the lake's folder's parent is.
    local_dir: Path = DEFAULT_HOME
    # New files for the daily flow; each is moved to processed/ or rejected/ once ingested.
    inbox: Path = DEFAULT_HOME / "inbox"
    config: Path = Path("leadflow.yaml")
    expectations: Path = PROJECT_ROOT / "expectations"
    # A Dask scheduler (tcp://host:8786): the days' partitions run on its workers (README: A
    # Dask cluster); unset, in this process.
    dask_address: str | None = None

    @field_validator("lake", mode="before")
    @classmethod
    def _lake_location(cls, value: object) -> str:
        text = str(value)
        if "://" not in text:
            return text
        scheme, _, rest = text.partition("://")
        if scheme != "s3" or not rest.split("/")[0]:
            raise ValueError(f"{text!r} is neither a folder nor s3://bucket/prefix")
        return text.rstrip("/")

    @property
    def lake_is_remote(self) -> bool:
        return self.lake.startswith("s3://")

    @property
    def local_folder(self) -> Path:
        """What stays on this machine: beside a local lake, else in LEADFLOW_LOCAL_DIR."""
        return self.local_dir if self.lake_is_remote else Path(self.lake).parent

    @property
    def lake_local(self) -> Path:
        """The lake's staging area and run cache: in a local lake, else `<local_dir>/lake`."""
        return self.local_dir / "lake" if self.lake_is_remote else Path(self.lake)


def get_settings() -> Settings:
    """Read the environment now (cheap): a changed variable is seen by the next call."""
    try:
        return Settings()
    except ValidationError as error:
        first = error.errors()[0]
        name = f"LEADFLOW_{'_'.join(map(str, first['loc'])).upper()}"
        raise SettingsError(f"{name}: {first['msg'].removeprefix('Value error, ')}") from None
