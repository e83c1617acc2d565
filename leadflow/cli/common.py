"""What every command shares: the consoles, one-line errors, the workspace, Prefect or not.

Only typer and rich are imported here: `leadflow --help` must answer at once. Everything heavy
(DuckDB, SQLAlchemy, Great Expectations, Prefect) is imported inside the commands that use it.
"""

import functools
import logging
import os
import sys
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated

import click
import typer
from rich.console import Console

console = Console()
errors = Console(stderr=True)

Day = Annotated[datetime | None, typer.Option(formats=["%Y-%m-%d"], help="The day, YYYY-MM-DD.")]


def debug_enabled() -> bool:
    return os.environ.get("LEADFLOW_DEBUG", "") not in ("", "0")


def verbose_enabled() -> bool:
    return os.environ.get("LEADFLOW_VERBOSE", "") not in ("", "0")


class ConsoleLog(logging.Handler):
    """leadflow's log lines on the terminal (--verbose), above any progress bar."""

    def __init__(self):
        super().__init__(logging.INFO)

    def emit(self, record: logging.LogRecord) -> None:
        stamp = datetime.fromtimestamp(record.created).strftime("%H:%M:%S.%f")[:-3]
        console.print(
            f"{stamp} {record.getMessage()}",
            style="dim",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


def show_log_lines() -> None:
    logger = logging.getLogger("leadflow")
    if not any(isinstance(handler, ConsoleLog) for handler in logger.handlers):
        logger.addHandler(ConsoleLog())
    logger.setLevel(logging.INFO)


def fail(message: str, code: int = 1) -> None:
    """The one line a failed command prints (on stderr), then its exit code."""
    line = " ".join(str(message).split())
    errors.print(f"error: {line}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def one_line_errors() -> Iterator[None]:
    """Whatever fails becomes `error: <what, where, what to do>` and a non-zero exit code;
    with --debug (LEADFLOW_DEBUG=1) the exception propagates with its traceback."""
    try:
        yield
    except (typer.Exit, click.exceptions.ClickException, click.exceptions.Exit):
        raise
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except Exception as error:
        if debug_enabled():
            raise
        from leadflow.cli.failures import describe

        message, code = describe(error)
        fail(message, code)


def handled(function: Callable) -> Callable:
    """A command whose failures are one line (see `one_line_errors`)."""

    @functools.wraps(function)
    def command(*args, **kwargs):
        with one_line_errors():
            return function(*args, **kwargs)

    return command


def workspace():
    """The workspace of the settings (LEADFLOW_*); a bad configuration fails here, before any
    data is touched."""
    from leadflow.config import ConfigError
    from leadflow.settings import DEFAULT_HOME, EXAMPLE_CONFIG, get_settings
    from leadflow.workspace import Workspace

    try:
        return Workspace.from_settings()
    except ConfigError:
        config = get_settings().config
        if "LEADFLOW_CONFIG" in os.environ or config.exists() or not DEFAULT_HOME.exists():
            raise
        raise ConfigError(
            f"{config}: file not found; the demo here ran on the bundled example: `leadflow "
            f"init` writes it here to edit, or set LEADFLOW_CONFIG={EXAMPLE_CONFIG}"
        ) from None


def prefect_api_url() -> str | None:
    """The Prefect API runs are reported to: PREFECT_API_URL, else the active Prefect profile's.
    None: no server is configured, and runs are carried out in this process, without Prefect
    (read without importing Prefect, which takes seconds)."""
    url = os.environ.get("PREFECT_API_URL")
    if url is not None:
        return url or None
    home = Path(os.environ.get("PREFECT_HOME", "~/.prefect")).expanduser()
    profiles = Path(os.environ.get("PREFECT_PROFILES_PATH", home / "profiles.toml"))
    try:
        data = tomllib.loads(profiles.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return None
    active = os.environ.get("PREFECT_PROFILE") or data.get("active", "ephemeral")
    return data.get("profiles", {}).get(active, {}).get("PREFECT_API_URL") or None


def quiet_prefect_console(verbose: bool) -> None:
    """Prefect's log lines go to the run's log (the UI), not between the progress bars; with
    --verbose they are printed too. Set before Prefect is imported."""
    os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "leadflow")
    if not verbose:
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "ERROR")


def check_prefect_api(url: str) -> None:
    """Fail with one line, before anything runs, if the configured Prefect API does not
    answer (a flow would retry for minutes, then crash with a traceback)."""
    import httpx

    from leadflow.errors import UserError

    try:
        response = httpx.get(url.rstrip("/") + "/health", timeout=10)
        response.raise_for_status()
    except httpx.HTTPError as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserError(
            f"the Prefect API at {url} does not answer ({reason}); start the server "
            "(`prefect server start`), or unset PREFECT_API_URL to run without Prefect"
        ) from None


def short_path(path: str | Path, width: int = 40) -> str:
    """A path shortened from the left to fit `width` columns (tables stay readable at 80
    columns; a file name is never broken)."""
    text = str(path)
    if len(text) <= width:
        return text
    name = Path(text).name
    if len(name) >= width - 1:
        return "…" + name[-(width - 1) :]
    return "…" + text[-(width - 1) :]


def is_interactive() -> bool:
    return sys.stdout.isatty()
