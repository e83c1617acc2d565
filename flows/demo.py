"""Demo flow: make a realistic sample data set and run the pipeline on it end to end."""

from collections.abc import Callable
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.runtime import flow_run

from flows.days import run_plan
from flows.ingest import ingest_files
from leadflow.demo_data import DemoDataset, generate_demo_data
from leadflow.pipeline.days import plan_daily
from leadflow.scoring.scores import yesterday
from leadflow.store.lock import state_lock
from leadflow.workspace import Workspace
from tasks.report import report_task

# Called after each generation step with (step, done, total): the CLI's progress bar hangs here.
generation_listeners: list[Callable[[str, int, int], None]] = []


@task
def generate_task(out_dir: Path, contacts: int, days: int, seed: int) -> DemoDataset:
    logger = get_run_logger()

    def on_step(what: str, done: int, total: int) -> None:
        logger.info("generated %s (%d/%d)", what, done, total)
        for listener in generation_listeners:
            listener(what, done, total)

    return generate_demo_data(out_dir, contacts=contacts, days=days, seed=seed, on_step=on_step)


@flow(name="demo")
def demo_flow(out_dir: Path, contacts: int = 2000, days: int = 365, seed: int = 42) -> dict:
    """Generate the sample files, ingest them (contacts first, the broken batch last), then
    run the pipeline as of the last day of the sample (yesterday), as the daily flow does."""
    space = Workspace.from_settings()
    with state_lock(space.engine, f"demo flow run {flow_run.get_name() or ''}".strip()):
        dataset = generate_task(out_dir, contacts, days, seed)
        files = [
            dataset.contacts_file,
            dataset.hubspot_file,
            *dataset.event_files,
            dataset.rejected_file,
        ]
        ingested = ingest_files(files)
        day = yesterday(space)
        plan = plan_daily(space, day)
        ran = run_plan(space, plan)
        report_task(f"Demo run of {day}", plan.describe(), ingested, ran)
    return {"plan": plan.describe(), "ingest": ingested, "days": ran}
