"""The deployments `leadflow serve` runs in-process (no work pool), mirroring
`deployments/prefect.yaml`; the daily cron is read in the configured account time zone."""

from prefect.deployments.runner import RunnerDeployment
from prefect.schedules import Cron

from leadflow.config import LeadflowConfig

DAILY_CRON = "0 6 * * *"  # 06:00 in the account zone, as in deployments/prefect.yaml


def runner_deployments(config: LeadflowConfig) -> list[RunnerDeployment]:
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
