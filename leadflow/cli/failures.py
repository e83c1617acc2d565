"""What a failure says to the user: one line naming what failed, where, and what to do.

Imported only once something failed, so its imports cost nothing on the happy path.
"""

import os


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
    if type(error).__module__.lstrip("_").startswith("duckdb"):  # `_duckdb` in DuckDB 2
        if type(error).__name__ == "OutOfMemoryException":
            return _out_of_memory(error), 1
        return f"the lake or the run cache: {_duckdb_reason(error)}", 1
    return (
        f"unexpected {type(error).__name__}: {_first_line(error)} (a bug? run again with "
        "--debug for the traceback, and report it)",
        1,
    )


def _out_of_memory(error: BaseException) -> str:
    """DuckDB past its limit: not a broken lake. Seen on a first day of 5M contacts."""
    from leadflow.lake import DUCKDB_MEMORY_LIMIT

    return (
        f"DuckDB ran out of its {DUCKDB_MEMORY_LIMIT} memory limit ({_first_line(error)}); "
        "nothing was committed; see README, Scaling out: How far one machine goes"
    )


def _duckdb_reason(error: BaseException) -> str:
    """DuckDB's first line, or, when a Python file system failed under it (a lake on S3), the
    exception line of the traceback it carries (the first unindented line after its header)."""
    lines = str(error).splitlines()
    header = "Traceback (most recent call last)"
    if not any(line.startswith(header) for line in lines):
        return _first_line(error)
    after = lines[next(n for n, line in enumerate(lines) if line.startswith(header)) + 1 :]
    exception = next((line.strip() for line in after if line.strip() and not line[0].isspace()), "")
    return f"{exception}; check LEADFLOW_LAKE, AWS_ENDPOINT_URL and the AWS credentials"


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
