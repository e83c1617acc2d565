"""Runs: `run`, `backfill`, `rescore`, `demo`, `serve`.

Without a Prefect API configured (PREFECT_API_URL, or a Prefect profile's), a run is carried
out in this process: nothing waits for a server to come up. With one, the run is a flow run on
that server, with its artifacts. The steps are the same functions either way
(`leadflow.pipeline.runs`). With LEADFLOW_DASK_ADDRESS or --dask, the days' partitions run on a
Dask cluster's workers: submitted by this process, or as task runs of the flow's day tasks.
"""

import logging
import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from leadflow.cli import app
from leadflow.cli.common import (
    Day,
    check_prefect_api,
    console,
    fail,
    handled,
    prefect_api_url,
    quiet_prefect_console,
    verbose_enabled,
    workspace,
)
from leadflow.cli.output import print_outcome, print_results, progress_bar, progress_callback

log = logging.getLogger(__name__)
Start = Annotated[datetime, typer.Option(formats=["%Y-%m-%d"], help="First day, YYYY-MM-DD.")]
End = Annotated[datetime, typer.Option(formats=["%Y-%m-%d"], help="Last day, YYYY-MM-DD.")]
Dask = Annotated[
    bool,
    typer.Option(
        "--dask",
        help="Score the days' partitions on a Dask cluster of this machine (2 worker "
        "processes, started for the command); LEADFLOW_DASK_ADDRESS: on that cluster's.",
    ),
]


def _flow_mode() -> bool:
    """Whether runs go to a Prefect server (checked to answer, first)."""
    url = prefect_api_url()
    if url is None:
        return False
    check_prefect_api(url)
    quiet_prefect_console(verbose_enabled())
    return True


def _local_steps(space, progress, bar, run_partitions, verb: str = "ran"):
    from leadflow.pipeline.runs import LocalSteps

    return LocalSteps(
        space,
        on_day=progress_callback(progress, bar, verb),
        on_file=lambda path: progress.update(bar, description=f"ingest {Path(path).name}"),
        on_generated=progress_callback(progress, bar, "generated"),
        run_partitions=run_partitions,
    )


@contextmanager
def _partitions(dask: bool, progress, bar) -> Iterator:
    """How the days' partitions run, for the command: in this process; on the cluster at
    LEADFLOW_DASK_ADDRESS; or, with --dask, on a local cluster of the command's own, whose
    address the flow's day tasks then read. The scheduler is reached first: if it does not
    answer, nothing has run."""
    from leadflow.settings import get_settings

    address = get_settings().dask_address
    if not dask and not address:
        from leadflow.scoring.partitions import run_in_process

        yield run_in_process
        return
    from leadflow.cluster import ADDRESS_SETTING, connected, local_cluster, on_cluster

    with ExitStack() as stack:
        if dask:
            progress.update(bar, description="starting a local Dask cluster")
            address = stack.enter_context(local_cluster())
            stack.enter_context(_environment(ADDRESS_SETTING, address))
        client = stack.enter_context(connected(address))
        log.info("the days' partitions run on the Dask cluster at %s", address)
        yield on_cluster(client)


@contextmanager
def _environment(name: str, value: str) -> Iterator[None]:
    """An environment variable set for the block, then put back."""
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def _day_listener(listeners: list, callback):
    """Hang `callback` on a flow module's listeners for the block (Prefect mode)."""
    from contextlib import contextmanager

    @contextmanager
    def hung():
        listeners.append(callback)
        try:
            yield
        finally:
            listeners.remove(callback)

    return hung()


@app.command()
@handled
def run(as_of: Day = None, dask: Dask = False) -> None:
    """The daily run as of --as-of (default: yesterday in the account time zone): ingest the
    files waiting in the inbox ($LEADFLOW_INBOX), then score every contact, move lifecycle
    stages, update marketing statuses and demotions, and report. Days missed since the last
    run are caught up; a day already run is replayed with every later day (late data)."""
    day = as_of.date() if as_of else None
    with progress_bar() as progress:
        bar = progress.add_task("run: starting", total=None)
        space = workspace()
        flow = _flow_mode()
        with _partitions(dask, progress, bar) as run_partitions:
            if flow:
                from flows.daily import daily_flow
                from flows.steps import day_listeners

                with _day_listener(day_listeners, progress_callback(progress, bar, "ran")):
                    outcome = daily_flow(as_of=day)
            else:
                from leadflow.pipeline import runs
                from leadflow.settings import get_settings

                steps = _local_steps(space, progress, bar, run_partitions)
                outcome = runs.daily(space, steps, day, get_settings().inbox)
    print_outcome(outcome, space)
    synced = outcome.get("hubspot", {})
    failed = [
        f"the HubSpot {step} failed" for step, got in synced.items() if got["status"] == "failed"
    ]
    refused = sum(synced.get("push", {}).get("failed", {}).values())
    if refused:
        failed.append(f"HubSpot refused {refused} value(s)")
    if failed:
        fail(f"{' and '.join(failed)} (see above); the next run takes it up where it stopped")


@app.command()
@handled
def backfill(start: Start, end: End, dask: Dask = False) -> None:
    """Replay every day from --start to --end in order, as the daily runs would have (days
    already run after --start are undone first, and the replay goes on up to the latest)."""
    if end < start:
        fail(f"--end {end.date()} is before --start {start.date()}")
    with progress_bar() as progress:
        bar = progress.add_task("backfill: starting", total=None)
        space = workspace()
        flow = _flow_mode()
        with _partitions(dask, progress, bar) as run_partitions:
            if flow:
                from flows.backfill import backfill_flow
                from flows.steps import day_listeners

                with _day_listener(day_listeners, progress_callback(progress, bar, "backfill")):
                    outcome = backfill_flow(start=start.date(), end=end.date())
            else:
                from leadflow.pipeline import runs

                steps = _local_steps(space, progress, bar, run_partitions, "backfill")
                outcome = runs.backfill(space, steps, start.date(), end.date())
    print_outcome(outcome, space)


@app.command()
@handled
def rescore(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the impact only; write nothing.")
    ] = False,
    as_of: Day = None,
    dask: Dask = False,
) -> None:
    """After a rule change: rescore everyone with the current rules as of the latest day run,
    moving stages and marketing statuses by them. --dry-run shows what would change (as of
    --as-of, default the last day scored) and writes nothing."""
    if not dry_run:
        if as_of:
            fail("--as-of goes with --dry-run; a rescore runs the latest day run")
        with progress_bar() as progress:
            bar = progress.add_task("rescore: starting", total=None)
            space = workspace()
            flow = _flow_mode()
            with _partitions(dask, progress, bar) as run_partitions:
                if flow:
                    from flows.rescore import rescore_flow

                    outcome = rescore_flow()
                else:
                    from leadflow.pipeline import runs

                    steps = _local_steps(space, progress, bar, run_partitions)
                    outcome = runs.rescore(space, steps)
        print_outcome(outcome, space)
        return
    if dask:
        fail("--dask goes with a rescore that runs; --dry-run scores in this process")
    from leadflow.cli.scores import print_rescore_impact

    print_rescore_impact(as_of)


@app.command()
@handled
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the sample files.")] = Path(
        ".leadflow/demo"
    ),
    contacts: Annotated[int, typer.Option(min=1, help="How many contacts.")] = 2000,
    days: Annotated[int, typer.Option(min=1, help="How many days of activity.")] = 365,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed, the same data.")] = 42,
    dask: Dask = False,
) -> None:
    """Generate a realistic sample data set (contacts, a HubSpot export, a year of activity,
    a few deliberately bad rows and one deliberately broken file) and run the pipeline on it:
    ingest, validation, scores, lifecycle stages, marketing status, the tier report. In a
    folder without leadflow.yaml it runs on the bundled example configuration."""
    _example_config_unless_own()
    with progress_bar() as progress:
        bar = progress.add_task("demo: starting", total=None)
        space = workspace()
        flow = _flow_mode()
        with _partitions(dask, progress, bar) as run_partitions:
            if flow:
                from flows.demo import demo_flow
                from flows.steps import day_listeners
                from tasks.demo import generation_listeners

                generated = progress_callback(progress, bar, "generated")
                with (
                    _day_listener(generation_listeners, generated),
                    _day_listener(day_listeners, progress_callback(progress, bar, "ran")),
                ):
                    outcome = demo_flow(out_dir=out, contacts=contacts, days=days, seed=seed)
            else:
                from leadflow.pipeline import runs

                steps = _local_steps(space, progress, bar, run_partitions)
                outcome = runs.demo(space, steps, out, contacts, days, seed)
    results = outcome["ingest"]
    print_results("demo: ingest", results)
    loaded = sum(item.get("rows_loaded", 0) for item in results)
    quarantined = sum(item.get("rows_quarantined", 0) for item in results)
    rejected = [item for item in results if item["status"] == "rejected"]
    console.print(
        f"ingested {loaded} rows, quarantined {quarantined} rows, "
        f"rejected {len(rejected)} batch(es) whole:"
    )
    for item in rejected:
        console.print(f"  {item['reason']}", markup=False, highlight=False)
    print_outcome(outcome, space, ingest=False)


def _example_config_unless_own() -> None:
    """The demo in a folder of its own (no leadflow.yaml, no LEADFLOW_CONFIG): the example."""
    from leadflow.settings import EXAMPLE_CONFIG, get_settings

    if "LEADFLOW_CONFIG" in os.environ or get_settings().config.exists():
        return
    os.environ["LEADFLOW_CONFIG"] = str(EXAMPLE_CONFIG)
    console.print(
        f"no leadflow.yaml here: the demo runs on the bundled example ({EXAMPLE_CONFIG}); "
        "`leadflow init` writes a copy to edit"
    )


@app.command()
@handled
def serve() -> None:
    """Serve the daily (scheduled), backfill and rescore deployments from this process, without
    a work pool, until interrupted. Needs a Prefect server (PREFECT_API_URL)."""
    url = prefect_api_url()
    if url is None:
        fail(
            "serve needs a Prefect server: start one (`prefect server start`) and set "
            "PREFECT_API_URL (e.g. http://127.0.0.1:4200/api)"
        )
    check_prefect_api(url)
    from prefect import serve as prefect_serve

    from leadflow.deployments import refuse_pool_deployments, runner_deployments

    deployments = runner_deployments(workspace().config)
    refuse_pool_deployments(deployments)
    prefect_serve(*deployments)
