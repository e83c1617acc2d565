"""HubSpot tasks: one task run for the pull and one for the push of a run (each sends many
requests, batch by batch; never one task per contact). Retried when HubSpot stayed unreachable
or overloaded past the client's own retries; not when the token, the data or a rule is wrong."""

import os

from prefect import task
from prefect.logging import get_run_logger

from leadflow.hubspot.client import HubSpotRetriesExhausted
from leadflow.hubspot.connection import TOKEN_VARIABLE
from leadflow.hubspot.sync import run_pull, run_push
from leadflow.workspace import Workspace


def retry_when_unreachable(_task, _task_run, state) -> bool:
    error = state.result(raise_on_failure=False)
    return isinstance(error, HubSpotRetriesExhausted | OSError)


def secret_token(space: Workspace) -> str | None:
    """The token of the Secret block the configuration names (deployments), unless the
    environment has one; None: `open_client` reads the environment's."""
    name = space.config.hubspot.token_secret
    if not name or os.environ.get(TOKEN_VARIABLE):
        return None
    from prefect.blocks.system import Secret

    return Secret.load(name).get()


@task(retries=2, retry_delay_seconds=[30, 120], retry_condition_fn=retry_when_unreachable)
def hubspot_pull_task() -> dict:
    """Contacts and email events since the last pull (a retry resumes where the failed try
    stopped: each batch's cursor was committed with it)."""
    space = Workspace.from_settings()
    logger = get_run_logger()

    def log_batch(batch: dict) -> None:
        logger.info(
            "HubSpot %s batch: %s, %d rows, %d loaded, %d quarantined",
            batch["kind"],
            batch["status"],
            batch["rows_total"],
            batch["rows_loaded"],
            batch["rows_quarantined"],
        )

    summary = run_pull(space, secret_token(space), on_batch=log_batch)
    logger.info(
        "HubSpot pull: %d contacts, %d email events", summary["contacts"], summary["events"]
    )
    return summary


@task(retries=2, retry_delay_seconds=[30, 120], retry_condition_fn=retry_when_unreachable)
def hubspot_push_task(dry_run: bool = False) -> dict:
    """What changed since the last push (a retry sends only what was not recorded)."""
    space = Workspace.from_settings()
    summary = run_push(space, secret_token(space), dry_run)
    get_run_logger().info(
        "HubSpot push: sent %s; failed %s; left out %s",
        summary["sent"],
        summary["failed"],
        summary["skipped"],
    )
    return summary
