"""What a failure says to the user: one line naming what failed, where, and what to do.

Imported only once something failed, so its imports cost nothing on the happy path.
"""

import os
import sys


def _first_line(text: object) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[0] if lines else ""


def describe(error: BaseException) -> tuple[str, int]:
    """(message, exit code) for any exception a command raised."""
    from leadflow.errors import UserError

    if isinstance(error, UserError):
        return str(error), error.exit_code
    database = _database_failure(error)
    if database:
        return database, 1
    if isinstance(error, OSError):
        return _os_failure(error), 1
    duckdb = sys.modules.get("duckdb")  # not imported: the error cannot be DuckDB's
    if duckdb is not None and isinstance(error, duckdb.Error):
        return f"the lake or the run cache: {_first_line(error)}", 1
    return (
        f"unexpected {type(error).__name__}: {_first_line(error)} (a bug? run again with "
        "--debug for the traceback, and report it)",
        1,
    )


def _database_failure(error: BaseException) -> str | None:
    if not type(error).__module__.startswith("sqlalchemy"):
        return None
    from sqlalchemy.exc import DBAPIError, OperationalError

    if not isinstance(error, DBAPIError):
        return None
    url = _database_url()
    reason = _first_line(error.orig) or type(error.orig).__name__
    if isinstance(error, OperationalError):
        return (
            f"the state store {url} cannot be used: {reason}; check LEADFLOW_DATABASE_URL "
            "and that the database server is running"
        )
    return f"the state store {url} refused a statement: {reason}"


def _database_url() -> str:
    from sqlalchemy.engine import make_url

    from leadflow.settings import get_settings

    try:
        return make_url(get_settings().database_url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL: say so without repeating it (it may hold a password)
        return "(LEADFLOW_DATABASE_URL)"


def _os_failure(error: OSError) -> str:
    where = error.filename or ""
    what = error.strerror or _first_line(error) or type(error).__name__
    hint = ""
    if isinstance(error, PermissionError):
        hint = "; check the permissions of LEADFLOW_LAKE, LEADFLOW_DATABASE_URL's folder"
    elif getattr(error, "errno", None) == 28:
        hint = "; free some disk space"
    lake = os.environ.get("LEADFLOW_LAKE")
    if lake and where and str(where).startswith(lake):
        hint = "; the lake (LEADFLOW_LAKE) must be a folder this user can write"
    return f"{where}: {what}{hint}" if where else f"{what}{hint}"
