"""The rescore flow: after a rule change, run the latest day again with the current rules."""

from prefect import flow

from flows.steps import PrefectSteps
from leadflow.pipeline import runs
from leadflow.workspace import Workspace


@flow(name="rescore")
def rescore_flow() -> dict:
    """Rescore every contact as of the latest day run, and move stages and marketing status
    by the current rules; the summary reports how many contacts changed band and stage."""
    return runs.rescore(Workspace.from_settings(), PrefectSteps())
