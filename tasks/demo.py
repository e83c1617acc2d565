"""The demo's generation step as a task, its progress in the run log and the CLI's bar."""

from collections.abc import Callable
from pathlib import Path

from prefect import task
from prefect.logging import get_run_logger

from leadflow.demo_data import DemoDataset, generate_demo_data

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
