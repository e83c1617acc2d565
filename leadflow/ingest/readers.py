"""Read an input file (CSV, JSON Lines, Parquet) into an Arrow table, losing no row.

A file that cannot be trusted as a whole (empty, wrong encoding, corrupt Parquet) raises
`InputFileError` with a one-line message naming the file. A single record that cannot be parsed
(a CSV line with the wrong number of fields, a JSON line that is not an object) is returned in
`unreadable` with its raw text, to be quarantined like any other bad row.
"""

import codecs
import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

ROW = "_row"
CHUNK = 16 * 1024 * 1024


class InputFileError(ValueError):
    """A file-level problem; the message is one line and starts with the file name."""


@dataclass(frozen=True)
class UnreadableRow:
    row: int
    reason: str
    raw: str


@dataclass
class RawFile:
    """The readable records (with their 1-based record number in `_row`) and the others."""

    table: pa.Table
    unreadable: list[UnreadableRow]
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


def read_input(path: Path) -> RawFile:
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise InputFileError(f"{path}: file is empty")
    reader = {"csv": _read_csv, "jsonl": _read_jsonl, "parquet": _read_parquet}[file_format(path)]
    raw = reader(path)
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
    columns = [name.strip() for name in header]
    if len(set(columns)) != len(columns):
        raise InputFileError(f"{path}: the header repeats a column name")
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
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(
                use_threads=False, column_names=columns, skip_rows=1, block_size=CHUNK
            ),
            parse_options=pacsv.ParseOptions(invalid_row_handler=keep_invalid),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.string() for name in columns}, strings_can_be_null=True
            ),
        )
    except pa.ArrowInvalid as error:
        message = str(error).splitlines()[0]
        raise InputFileError(f"{path}: unreadable CSV ({message})") from None
    bad_rows = {line.row for line in bad_lines}
    total = table.num_rows + len(bad_rows)
    numbers = [number for number in range(1, total + 1) if number not in bad_rows]
    table = table.append_column(ROW, pa.array(numbers, pa.int64()))
    return RawFile(table=table, unreadable=bad_lines)


def _read_jsonl(path: Path) -> RawFile:
    check_utf8(path)
    records: list[dict] = []
    numbers: list[int] = []
    unreadable: list[UnreadableRow] = []
    with path.open(encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                unreadable.append(
                    UnreadableRow(number, f"invalid JSON ({error.msg})", line.rstrip())
                )
                continue
            if not isinstance(record, dict):
                unreadable.append(UnreadableRow(number, "not a JSON object", line.rstrip()))
                continue
            records.append(record)
            numbers.append(number)
    columns: dict[str, list] = {}
    for record in records:
        for name in record:
            columns.setdefault(name, [])
    for name, values in columns.items():
        values.extend(_as_text(record.get(name)) for record in records)
    table = pa.table({name: pa.array(values, pa.string()) for name, values in columns.items()})
    table = table.append_column(ROW, pa.array(numbers, pa.int64()))
    return RawFile(table=table, unreadable=unreadable)


def _as_text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


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
