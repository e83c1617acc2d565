"""Read an input file (CSV, JSON Lines, Parquet) into an Arrow table, losing no row.

A file that cannot be trusted as a whole (empty, wrong encoding, corrupt Parquet) raises
`InputFileError` with a one-line message naming the file. A single record that cannot be parsed
(a CSV line with the wrong number of fields, a JSON line that is not an object) is returned in
`unreadable` with its raw text, to be quarantined like any other bad row.
"""

import codecs
import csv
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from leadflow.errors import UserError

ROW = "_row"
CHUNK = 16 * 1024 * 1024


class InputFileError(UserError, ValueError):
    """A file-level problem; the message is one line and starts with the file name."""


@dataclass(frozen=True)
class UnreadableRow:
    row: int
    reason: str
    raw: str


@dataclass
class RawFile:
    """The readable records (with their 1-based record number in `_row`) and the others.

    `notes` say what reading changed (a repeated column name kept apart, a column without a
    name named); `document` names the vendor format whose JSON document was unwrapped into
    these records, if one was."""

    table: pa.Table
    unreadable: list[UnreadableRow]
    notes: list[str] = field(default_factory=list)
    document: str | None = None
    rows_total: int = field(init=False)

    def __post_init__(self) -> None:
        self.rows_total = self.table.num_rows + len(self.unreadable)

    def release(self) -> None:
        """Drop the records (a large file's biggest copy in memory) once they are loaded."""
        self.table = pa.table({})


def file_format(path: Path) -> str:
    suffixes = [suffix.lower() for suffix in path.suffixes]
    if ".parquet" in suffixes or ".pq" in suffixes:
        return "parquet"
    if {".jsonl", ".ndjson", ".json"} & set(suffixes):
        return "jsonl"
    return "csv"


# What a file starts with, for files that are not what their name says.
MAGIC = {
    b"PAR1": "a Parquet file: name it .parquet",
    b"\x1f\x8b": "gzip-compressed: decompress it first",
    b"PK\x03\x04": "a ZIP archive (an Excel workbook? export it as CSV)",
    b"%PDF": "a PDF document, not data",
}


# A whole JSON document -> (its records, the name of the format that knows it), or None.
Unwrap = Callable[[object], tuple[list, str] | None]


def read_input(path: Path, unwrap: Unwrap | None = None) -> RawFile:
    """The file's records. `unwrap` opens JSON documents that wrap records (a vendor's page
    or report); without it, or when it does not know a document, an array is the records."""
    path = Path(path)
    if path.is_dir():
        raise InputFileError(
            f"{path}: is a folder, not a file (give the files in it: {path}/*.csv ...)"
        )
    if not path.exists():
        raise InputFileError(f"{path}: no such file")
    if not path.is_file():
        raise InputFileError(f"{path}: is not a regular file")
    if path.stat().st_size == 0:
        raise InputFileError(f"{path}: file is empty")
    kind = file_format(path)
    with path.open("rb") as handle:
        start = handle.read(8)
    for magic, what in MAGIC.items():
        if start.startswith(magic) and not (kind == "parquet" and magic == b"PAR1"):
            raise InputFileError(f"{path}: is {what}")
    if kind == "jsonl":
        raw = _read_json(path, unwrap)
    else:
        raw = {"csv": _read_csv, "parquet": _read_parquet}[kind](path)
    if raw.rows_total == 0:
        raise InputFileError(f"{path}: file has no data rows")
    return raw


def check_utf8(path: Path) -> None:
    """Fail on the first byte that is not UTF-8, naming its line, without loading the file."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    line = 1
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as error:
                line += chunk[: error.start].count(b"\n")
                raise InputFileError(
                    f"{path}: not valid UTF-8 at line {line} (wrong encoding? re-export as UTF-8)"
                ) from None
            line += chunk.count(b"\n")
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise InputFileError(
                f"{path}: ends in the middle of a UTF-8 character (truncated file?)"
            ) from None


def _read_csv(path: Path) -> RawFile:
    check_utf8(path)
    with path.open(encoding="utf-8-sig", newline="") as handle:
        header = next(csv.reader(handle), None)
    if not header or not any(name.strip() for name in header):
        raise InputFileError(f"{path}: file is empty")
    columns, notes = distinct_names([name.strip() for name in header])
    bad_lines: list[UnreadableRow] = []

    def keep_invalid(row: pacsv.InvalidRow) -> str:
        bad_lines.append(
            UnreadableRow(
                row=row.number - 1,
                reason=f"{row.actual_columns} fields where the header has "
                f"{row.expected_columns} (truncated or malformed line)",
                raw=row.text,
            )
        )
        return "skip"

    try:
        # Arrow parses the header row itself (a quoted name may span lines), then the columns
        # take their distinct names by position.
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(use_threads=False, block_size=CHUNK),
            parse_options=pacsv.ParseOptions(invalid_row_handler=keep_invalid),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.string() for name in header}, strings_can_be_null=True
            ),
        )
    except pa.ArrowInvalid as error:
        message = str(error).splitlines()[0]
        raise InputFileError(f"{path}: unreadable CSV ({message})") from None
    if table.num_columns != len(columns):
        raise InputFileError(f"{path}: unreadable CSV header ({table.num_columns} columns read)")
    table = table.rename_columns(columns)
    bad_rows = {line.row for line in bad_lines}
    total = table.num_rows + len(bad_rows)
    numbers = [number for number in range(1, total + 1) if number not in bad_rows]
    table = table.append_column(ROW, pa.array(numbers, pa.int64()))
    return RawFile(table=table, unreadable=bad_lines, notes=notes)


def distinct_names(names: list[str]) -> tuple[list[str], list[str]]:
    """Column names made distinct, and what was done: a name without text is named by its
    position (`column 7`); a repeated one is kept apart by a suffix (`Billing Contact (2)`).
    HubSpot exports repeat association columns; rows ending with a comma have an empty one."""
    taken: set[str] = set()
    distinct, notes, repeats = [], [], {}
    for position, name in enumerate(names, start=1):
        if not name:
            name = f"column {position}"
            notes.append(f"column {position} has no name: kept as {name!r}")
        candidate, copy = name, 1
        while candidate in taken:
            copy += 1
            candidate = f"{name} ({copy})"
        if copy > 1:
            repeats.setdefault(name, [name]).append(candidate)
        taken.add(candidate)
        distinct.append(candidate)
    for name, kept in repeats.items():
        shown = ", ".join(repr(item) for item in kept)
        notes.append(f"the header repeats {name!r} {len(kept)} times: kept apart as {shown}")
    return distinct, notes


def _read_json(path: Path, unwrap: Unwrap | None) -> RawFile:
    """JSON Lines, or one JSON document: an array of records, or an object wrapping them (a
    vendor's page or report, opened by `unwrap`)."""
    check_utf8(path)
    with path.open(encoding="utf-8-sig") as handle:
        first = handle.read(CHUNK).lstrip()[:1]
        handle.seek(0)
        first_line = next((line for line in handle if line.strip()), "")
        more_lines = any(line.strip() for line in handle)
    if first == "[" or (first == "{" and not (more_lines and _is_object(first_line))):
        return _read_json_document(path, unwrap)
    return _read_jsonl(path)


def _is_object(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except json.JSONDecodeError:
        return False


def _read_json_document(path: Path, unwrap: Unwrap | None) -> RawFile:
    try:
        document = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as error:
        raise InputFileError(
            f"{path}: invalid JSON at line {error.lineno} ({error.msg}); expected an array of "
            "objects, a vendor's page of them, or JSON Lines"
        ) from None
    opened = unwrap(document) if unwrap else None
    label = None
    if opened is not None:
        document, label = opened
    elif isinstance(document, dict):
        document = [document]
    if not isinstance(document, list):
        raise InputFileError(f"{path}: expected an array of objects or JSON Lines")
    if document and not any(isinstance(item, dict) for item in document):
        raise InputFileError(
            f"{path}: is a JSON array of {_json_kind(document[0])}s, not of records (objects)"
        )
    # Written back as one array (one call into the C encoder) for DuckDB to take apart.
    items = json.dumps(document, ensure_ascii=False)
    table, unreadable = _json_records(
        """SELECT unnest(range(1, len(items) + 1)) AS _row, unnest(items) AS line
           FROM (SELECT CAST(json_extract($items, '$[*]') AS VARCHAR[]) AS items)""",
        {"items": items},
    )
    return RawFile(table=table, unreadable=unreadable, document=label)


def _json_kind(value: object) -> str:
    kinds = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return kinds.get(type(value), "number")


def _read_jsonl(path: Path) -> RawFile:
    table, unreadable = _json_records(
        # A line's number counts the blank lines; the BOM of a first line is not its text.
        """SELECT _row, rtrim(line, chr(13)) AS line FROM (
               SELECT unnest(range(1, len(lines) + 1)) AS _row, unnest(lines) AS line
               FROM (SELECT string_split(ltrim(content, chr(65279)), chr(10)) AS lines
                     FROM read_text($path)))
           WHERE trim(line, chr(32) || chr(9) || chr(13)) <> ''""",
        {"path": str(path)},
    )
    if unreadable and not table.num_rows and unreadable[0].reason.startswith("invalid JSON"):
        raise InputFileError(
            f"{path}: not JSON Lines (line {unreadable[0].row}: {unreadable[0].reason}); "
            "expected one JSON object per line, or an array of objects"
        )
    return RawFile(table=table, unreadable=unreadable)


# DuckDB's names for the JSON types, as leadflow names them in an unreadable row's reason.
JSON_KINDS = {"ARRAY": "array", "VARCHAR": "string", "BOOLEAN": "boolean", "NULL": "null"}


def _json_records(lines_sql: str, parameters: dict) -> tuple[pa.Table, list[UnreadableRow]]:
    """Records from their JSON texts (`lines_sql` yields `_row`, `line`), parsed by DuckDB:
    one text column per key seen (in order of first appearance; objects and arrays as JSON,
    booleans true/false, as a CSV cell would hold them), and the lines that are not objects.
    Keys reach DuckDB as bound JSON pointers, never as SQL text."""
    import duckdb

    with duckdb.connect() as connection:
        connection.execute(
            f"""CREATE TEMP TABLE lines AS
                SELECT _row, line,
                       CASE WHEN json_valid(line) THEN json_type(line) END AS kind
                FROM ({lines_sql})""",
            parameters,
        )
        keys = [
            key
            for (key,) in connection.sql(
                """SELECT key FROM (
                       SELECT _row, unnest(json_keys(line)) AS key,
                              generate_subscripts(json_keys(line), 1) AS position
                       FROM lines WHERE kind = 'OBJECT')
                   GROUP BY key ORDER BY min(_row), arg_min(position, _row)"""
            ).fetchall()
        ]
        pointers = ["/" + key.replace("~", "~0").replace("/", "~1") for key in keys]
        values = ", ".join(f"v[{index}] AS c{index}" for index in range(1, len(keys) + 1))
        table = connection.sql(
            f"""SELECT {values}{", " if keys else ""}_row FROM (
                    SELECT _row, json_extract_string(line, $pointers) AS v
                    FROM lines WHERE kind = 'OBJECT') ORDER BY _row""",
            params={"pointers": pointers},
        ).to_arrow_table()
        others = connection.sql(
            "SELECT _row, line, kind FROM lines WHERE kind IS DISTINCT FROM 'OBJECT' ORDER BY _row"
        ).fetchall()
    table = table.rename_columns([*keys, ROW])
    unreadable = [
        UnreadableRow(row, f"not a JSON object ({JSON_KINDS.get(kind, 'number')})", line)
        if kind
        else UnreadableRow(row, f"invalid JSON ({_json_error(line)})", line)
        for row, line, kind in others
    ]
    return table, unreadable


def _json_error(line: str) -> str:
    try:
        json.loads(line)
    except json.JSONDecodeError as error:
        return error.msg
    return "an unpaired surrogate, or a number out of range"


def _read_parquet(path: Path) -> RawFile:
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as error:
        message = str(error).splitlines()[0]
        raise InputFileError(
            f"{path}: unreadable Parquet, truncated or corrupt ({message})"
        ) from None
    numbers = pa.array(range(1, table.num_rows + 1), pa.int64())
    return RawFile(table=table.append_column(ROW, numbers), unreadable=[])
