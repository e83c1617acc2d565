"""The one way a name or a value is written into SQL text (DuckDB, SQLite, PostgreSQL).

Values from input files are bound as parameters or read as data (an Arrow table registered in
DuckDB), never spliced into SQL. What must be written into SQL text goes through these two
functions: an identifier between double quotes, a literal between single quotes, the quote
mark doubled inside (none of the three databases reads other escapes there). Column names of
an input file never reach SQL at all: its columns are renamed to positions (`c0`, `c1`, …)
before DuckDB sees them (`leadflow.ingest.load`).
"""


class UnwritableInSql(ValueError):
    """A name or text with a NUL character, which no SQL text can hold."""


def _checked(text: str) -> str:
    if "\x00" in text:
        raise UnwritableInSql(f"a NUL character cannot be written in SQL: {text[:40]!r}")
    return text


def identifier(name: str) -> str:
    """A quoted SQL identifier for any name (quotes, spaces, emoji, keywords, …)."""
    return '"' + _checked(str(name)).replace('"', '""') + '"'


def literal(value: object) -> str:
    """A SQL literal: NULL, true/false, a number, or quoted text."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + _checked(str(value)).replace("'", "''") + "'"
