"""leadflow: keeps a CRM contact base honest every day (see README.md and SPEC)."""

import atexit
import typing


def _clear_typing_caches() -> None:
    """DuckDB 2's nanobind bindings report objects still held by `typing`'s caches at exit as
    "leaked" (a wall of benign warnings after every Prefect run); clearing the caches first
    keeps the output readable."""
    for cleanup in typing._cleanups:  # type: ignore[attr-defined]
        cleanup()


atexit.register(_clear_typing_caches)
