"""Demo flow: make a realistic sample data set and run the pipeline on it end to end."""

from pathlib import Path

from prefect import flow, task

from flows.ingest import ingest_flow
from leadflow.demo_data import DemoDataset, generate_demo_data
from leadflow.scores import yesterday
from leadflow.workspace import Workspace
from tasks.lifecycle import advance_stages_task
from tasks.marketing import update_marketing_task
from tasks.score import score_day_task


@task
def generate_task(out_dir: Path, contacts: int, days: int, seed: int) -> DemoDataset:
    return generate_demo_data(out_dir, contacts=contacts, days=days, seed=seed)


@flow(name="demo")
def demo_flow(out_dir: Path, contacts: int = 2000, days: int = 365, seed: int = 42) -> dict:
    """Generate the sample files, ingest them (contacts first, the broken batch last), then
    score everyone, move them through the lifecycle and update their marketing status as of
    the last day of the sample."""
    dataset = generate_task(out_dir, contacts, days, seed)
    files = [
        dataset.contacts_file,
        dataset.hubspot_file,
        *dataset.event_files,
        dataset.rejected_file,
    ]
    ingested = ingest_flow(files)
    day = yesterday(Workspace.from_settings())
    scoring = score_day_task(day)
    lifecycle = advance_stages_task(day, wait_for=[scoring])
    marketing = update_marketing_task(day, wait_for=[lifecycle])
    return {
        "ingest": ingested,
        "scoring": scoring,
        "lifecycle": lifecycle,
        "marketing": marketing,
    }
