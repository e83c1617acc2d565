"""SQL building blocks shared by the vendor formats.

Every name or value that reaches the SQL text goes through `quote`: identifiers (column names of
`raw`, which are vendor keys) and literals (vendor keys used as JSON keys, configured track names).
Vendor *values* never reach the SQL text: they are data in `raw`.
"""

import json
from collections.abc import Iterable, Mapping

from leadflow.ingest.readers import ROW
from leadflow.sql import identifier
from leadflow.sql import literal as sql_literal

# The event columns a mapping yields, in order.
OUTPUT_COLUMNS: tuple[str, ...] = (
    ROW,
    "event_id",
    "source",
    "email",
    "type",
    "occurred_at",
    "url",
    "form_id",
    "campaign_id",
    "properties",
    "machine",
    "vendor_type",
    "ignored",
)

# Epoch seconds of 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z: the times ISO-8601 can write.
_FIRST_SECOND = -62_135_596_800
_LAST_SECOND = 253_402_300_799
# SendGrid documents seconds, but its Single Send example carries milliseconds: a number this
# large (the year 5138 in seconds, 1973 in milliseconds) is read as milliseconds.
MILLISECONDS_FROM = 100_000_000_000

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


class FormatError(ValueError):
    """The records cannot be mapped as they are; the message is one line."""


def quote(text: str, mark: str) -> str:
    """`text` as an identifier (`"`) or a string literal (`'`): `leadflow.sql`'s helpers."""
    if mark == '"':
        return identifier(text)
    if mark == "'":
        return sql_literal(text)
    raise ValueError(f"not an SQL quote mark: {mark!r}")


def ident(name: str) -> str:
    return identifier(name)


def literal(value: str) -> str:
    return sql_literal(value)


def duckdb_name(name: str) -> str:
    """The name DuckDB matches a column by: it stops at a NUL and ignores ASCII case."""
    return name.split("\x00", 1)[0].translate(_ASCII_LOWER)


class Fields:
    """The columns of `raw` a mapping can read, as text expressions (NULL where absent).

    `columns` names the keys, each a column of `raw` of that name; or maps each key to the
    column of `raw` that holds it (the ingest names `raw`'s columns by position, so that no key
    of a file reaches SQL: then keys differing only in case are told apart too)."""

    def __init__(self, columns: Iterable[str] | Mapping[str, str]):
        if isinstance(columns, Mapping):
            self.physical = {str(key): column for key, column in columns.items() if key != ROW}
            self.names = frozenset(self.physical)
            return
        names = {str(name) for name in columns} - {ROW}
        seen: dict[str, list[str]] = {ROW: [ROW]}
        for name in sorted(names):
            seen.setdefault(duckdb_name(name), []).append(name)
        clashes = [group for group in seen.values() if len(group) > 1]
        if clashes:
            shown = ", ".join(repr(name[:40]) for name in clashes[0])
            raise FormatError(
                f"keys that differ only in case (or after a NUL) cannot be told apart: {shown}"
            )
        # A name with a NUL in it cannot be written in SQL (DuckDB cuts it there): such a key is
        # not read at all.
        self.names = frozenset(name for name in names if "\x00" not in name)
        self.physical = {name: name for name in self.names}

    def text(self, name: str) -> str:
        """The column as trimmed text, NULL when empty or absent."""
        if name not in self.names:
            return "CAST(NULL AS VARCHAR)"
        return f"NULLIF(trim(CAST({ident(self.physical[name])} AS VARCHAR)), '')"

    def first(self, *names: str) -> str:
        """The first of these columns that has a value."""
        present = [self.text(name) for name in names if name in self.names]
        if not present:
            return "CAST(NULL AS VARCHAR)"
        return present[0] if len(present) == 1 else f"COALESCE({', '.join(present)})"

    def others(self, consumed: Iterable[str]) -> list[str]:
        """The columns not in `consumed`, in a stable order."""
        return sorted(self.names - set(consumed))

    def members(self, names: Iterable[str]) -> str:
        """These columns as JSON object members under their own names (see `members`)."""
        return members([(name, json_value(self.text(name))) for name in names])


def json_kind(expression: str) -> str:
    """`OBJECT`, `ARRAY`, ... for JSON text, NULL for other text. (A CASE, not an AND: DuckDB
    evaluates both sides of an AND, and json_type fails on text that is not JSON.)"""
    return f"CASE WHEN json_valid({expression}) THEN json_type({expression}) END"


def json_text(document: str, path: str) -> str:
    """The text at `path` of a JSON text, NULL when the text is not JSON or has nothing there."""
    return (
        f"NULLIF(trim(CASE WHEN json_valid({document}) "
        f"THEN json_extract_string({document}, {literal(path)}) END), '')"
    )


def json_string(expression: str) -> str:
    """Text as the text of a JSON string (NULL stays NULL)."""
    return f"CAST(to_json({expression}) AS VARCHAR)"


def json_value(expression: str) -> str:
    """Text as the text of a JSON value: an object or array stays one (`raw` holds those as JSON
    text), any other value becomes a JSON string. Only text starting with `{` or `[` is parsed."""
    string = json_string(expression)
    return (
        f"CASE WHEN left({expression}, 1) IN ('{{', '[') "
        f"THEN CASE WHEN json_valid({expression}) THEN {expression} ELSE {string} END "
        f"ELSE {string} END"
    )


def members(pairs: list[tuple[str, str]]) -> str:
    """`"key":value,...` for (key, SQL expression giving JSON text or NULL) pairs, the NULL ones
    left out (concat_ws skips NULLs); NULL when none is left."""
    if not pairs:
        return "CAST(NULL AS VARCHAR)"
    items = ", ".join(f"{literal(json.dumps(key) + ':')} || ({value})" for key, value in pairs)
    return f"NULLIF(concat_ws(',', {items}), '')"


def object_text(*member_lists: str) -> str:
    """The text of a JSON object made of these `members` lists (their keys must not repeat)."""
    return f"'{{' || COALESCE(concat_ws(',', {', '.join(member_lists)}), '') || '}}'"


def is_true(expression: str) -> str:
    """A vendor boolean (`true`, also `True` or `1` as some writers spell it) as BOOLEAN."""
    return f"COALESCE(lower({expression}) IN ('true', '1'), false)"


def epoch_to_iso(expression: str, unit: str) -> str:
    """Epoch `seconds`, `milliseconds` or `auto` (seconds, or milliseconds past
    `MILLISECONDS_FROM`) as ISO-8601 UTC text, e.g. `2017-12-15T00:59:29+00:00` (with `.ffffff`
    when the time has a fraction). Text that is not a number, or a number no ISO-8601 date can
    write, comes back unchanged, for validation to report as unparsable.

    Built on `make_timestamp(microseconds)`, which knows no time zone: the session's TimeZone
    changes nothing."""
    number = f"TRY_CAST({expression} AS DOUBLE)"
    if unit == "seconds":
        micros = f"({number} * 1000000)"
    elif unit == "milliseconds":
        micros = f"({number} * 1000)"
    elif unit == "auto":
        micros = (
            f"(CASE WHEN abs({number}) >= {MILLISECONDS_FROM} THEN {number} * 1000 "
            f"ELSE {number} * 1000000 END)"
        )
    else:
        raise ValueError(f"unknown epoch unit {unit!r}")
    whole = f"CAST(round({micros}) AS BIGINT)"
    stamp = f"make_timestamp({whole})"
    return (
        f"CASE WHEN {expression} IS NULL THEN NULL "
        f"WHEN {micros} BETWEEN {_FIRST_SECOND * 1_000_000} AND {_LAST_SECOND * 1_000_000} "
        f"THEN CASE WHEN {whole} % 1000000 = 0 "
        f"THEN strftime({stamp}, '%Y-%m-%dT%H:%M:%S+00:00') "
        f"ELSE strftime({stamp}, '%Y-%m-%dT%H:%M:%S.%f+00:00') END "
        f"ELSE {expression} END"
    )


def case_map(expression: str, mapping: dict[str, str]) -> str:
    """`CASE expression WHEN key THEN value ... END` (NULL for any other value)."""
    if not mapping:
        return "CAST(NULL AS VARCHAR)"
    whens = " ".join(f"WHEN {literal(key)} THEN {literal(value)}" for key, value in mapping.items())
    return f"CASE {expression} {whens} END"


def one_of(expression: str, values: Iterable[str]) -> str:
    """`expression IN (values)`, false (not NULL) for a NULL expression."""
    listed = ", ".join(literal(value) for value in values)
    return f"COALESCE({expression} IN ({listed}), false)" if listed else "false"


def staged_select(stages: list[dict[str, str]], output: dict[str, str]) -> str:
    """A SELECT over `raw` built in stages: the first reads `raw`, each next one reads the aliases
    of the ones before (never `raw`, so a vendor key cannot shadow an alias), and `output` gives
    every column of OUTPUT_COLUMNS but `_row`."""
    first, *rest = stages
    items = [f"{ident(ROW)} AS {ident(ROW)}"]
    items += [f"{expression} AS {ident(alias)}" for alias, expression in first.items()]
    sql = f"SELECT {', '.join(items)} FROM raw"
    for number, stage in enumerate(rest, start=1):
        items = [f"{expression} AS {ident(alias)}" for alias, expression in stage.items()]
        sql = f"SELECT *, {', '.join(items)} FROM ({sql}) AS stage{number}"
    missing = set(OUTPUT_COLUMNS[1:]) - set(output)
    if missing:
        raise ValueError(f"mapping lacks {sorted(missing)}")
    types = {"machine": "BOOLEAN", "ignored": "BOOLEAN"}
    columns = [ident(ROW)] + [
        f"CAST({output[name]} AS {types.get(name, 'VARCHAR')}) AS {ident(name)}"
        for name in OUTPUT_COLUMNS[1:]
    ]
    return f"SELECT {', '.join(columns)} FROM ({sql}) AS mapped ORDER BY {ident(ROW)}"


def ref(alias: str) -> str:
    """An alias of an earlier stage."""
    return ident(alias)
