"""The deployments `leadflow serve` runs in-process (no work pool), mirroring
`deployments/prefect.yaml`; the daily cron is read in the configured account time zone.
Prefect is imported in the functions: the CLI names a refusal without importing it."""

from typing import TYPE_CHECKING

from leadflow.config import LeadflowConfig
from leadflow.errors import UserError

if TYPE_CHECKING:
    from prefect.deployments.runner import RunnerDeployment

DAILY_CRON = "0 6 * * *"  # 06:00 in the account zone, as in deployments/prefect.yaml


def runner_deployments(config: LeadflowConfig) -> list["RunnerDeployment"]:
    from prefect.schedules import Cron

    from flows.backfill import backfill_flow
    from flows.daily import daily_flow
    from flows.rescore import rescore_flow

    return [
        daily_flow.to_deployment(
            name="leadflow-daily",
            schedules=[Cron(DAILY_CRON, timezone=config.account.timezone)],
            concurrency_limit=1,
        ),
        backfill_flow.to_deployment(name="leadflow-backfill", concurrency_limit=1),
        rescore_flow.to_deployment(name="leadflow-rescore", concurrency_limit=1),
    ]


class DeploymentsTaken(UserError, RuntimeError):
    """`leadflow serve` would take over deployments that a work pool serves."""


def refuse_pool_deployments(deployments: list["RunnerDeployment"]) -> None:
    """Refuse to serve under the names of deployments a work pool serves (`prefect deploy`):
    serving would overwrite them (their pull steps cleared), so the pool's runs would crash."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    taken = []
    with get_client(sync_client=True) as client:
        for deployment in deployments:
            try:
                existing = client.read_deployment_by_name(
                    f"{deployment.flow_name}/{deployment.name}"
                )
            except ObjectNotFound:
                continue
            if existing.work_pool_name:
                name = f"{deployment.flow_name}/{deployment.name}"
                taken.append(f"{name} (pool {existing.work_pool_name})")
    if taken:
        raise DeploymentsTaken(
            f"deployments {', '.join(taken)} are served by a work pool (made by `prefect "
            "deploy`); `leadflow serve` would overwrite them: run them with `prefect worker "
            "start --pool leadflow`, or delete them first (`prefect deployment delete`)"
        )
