"""leadflow: keeps a CRM contact base honest every day (see README.md)."""

import atexit
import os
import sys


def _quiet_interpreter_teardown() -> None:
    """Mute stderr once every other exit handler has run.

    DuckDB 2's nanobind bindings print a wall of benign "leaked instance" warnings while the
    interpreter tears down after a Prefect run (objects still referenced at finalisation, not
    a memory leak). This handler is registered when leadflow is first imported, so it runs
    last: all output of the program and of the other exit handlers is already written.
    """
    sys.stderr.flush()
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)


atexit.register(_quiet_interpreter_teardown)
# A data pipeline makes no calls home: Prefect's local server would send usage telemetry (and
# log an error for each try on a machine without internet access).
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
