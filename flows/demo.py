"""Demo flow: make a realistic sample data set and run the pipeline on it end to end."""

from pathlib import Path

from prefect import flow

from flows.steps import PrefectSteps
from leadflow.pipeline import runs
from leadflow.workspace import Workspace


@flow(name="demo")
def demo_flow(out_dir: Path, contacts: int = 2000, days: int = 365, seed: int = 42) -> dict:
    """Generate the sample files, ingest them (contacts first, the broken batch last), then
    run the pipeline as of the last day of the sample (yesterday), as the daily flow does."""
    return runs.demo(Workspace.from_settings(), PrefectSteps(), out_dir, contacts, days, seed)
