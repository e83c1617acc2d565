"""File reading: each record is read or returned as unreadable; untrustworthy files fail whole."""

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from leadflow.ingest.readers import ROW, InputFileError, file_format, read_input


def write(path: Path, content: str | bytes) -> Path:
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return path


def test_csv_rows_are_numbered_and_a_short_line_is_kept_as_unreadable(tmp_path):
    path = write(tmp_path / "e.csv", "a,b,c\n1,2,3\n4,5\n7,8,9\n")
    raw = read_input(path)
    assert raw.table.column("a").to_pylist() == ["1", "7"]
    assert raw.table.column(ROW).to_pylist() == [1, 3]
    assert [(item.row, item.raw) for item in raw.unreadable] == [(2, "4,5")]
    assert "2 fields where the header has 3" in raw.unreadable[0].reason
    assert raw.rows_total == 3


def test_csv_truncated_in_the_middle_of_the_last_line(tmp_path):
    path = write(tmp_path / "e.csv", "a,b,c\n1,2,3\n4,5,6\n7,")
    raw = read_input(path)
    assert raw.table.num_rows == 2
    assert [item.row for item in raw.unreadable] == [3]


def test_csv_keeps_values_as_text_and_empty_cells_as_null(tmp_path):
    path = write(tmp_path / "e.csv", "\ufeffid,zip\n1,007\n2,\n")
    raw = read_input(path)
    assert raw.table.column_names == ["id", "zip", ROW]
    assert raw.table.column("zip").to_pylist() == ["007", None]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "file is empty"),
        (b"\n\n", "file is empty"),
        (b"a,b\n", "no data rows"),
        ("email,name\nx@y.co,Zoë\n".encode("latin-1"), "not valid UTF-8 at line 2"),
    ],
)
def test_untrustworthy_csv_files_fail_whole_with_one_line(tmp_path, content, message):
    path = write(tmp_path / "bad.csv", content)
    with pytest.raises(InputFileError) as error:
        read_input(path)
    assert message in str(error.value)
    assert str(path) in str(error.value)
    assert "\n" not in str(error.value)


def test_jsonl_bad_lines_are_unreadable_and_objects_become_text(tmp_path):
    lines = [
        json.dumps({"event_id": "1", "properties": {"score": 9}}),
        "{not json",
        "[1, 2]",
        "",
        json.dumps({"event_id": "2", "url": "/p"}),
    ]
    raw = read_input(write(tmp_path / "e.jsonl", "\n".join(lines) + "\n"))
    assert raw.table.column(ROW).to_pylist() == [1, 5]
    assert json.loads(raw.table.column("properties").to_pylist()[0]) == {"score": 9}
    assert raw.table.column("url").to_pylist() == [None, "/p"]
    assert [(item.row, item.reason.split(" ")[0]) for item in raw.unreadable] == [
        (2, "invalid"),
        (3, "not"),
    ]


def test_parquet_is_read_with_its_types_and_a_truncated_one_fails(tmp_path):
    path = tmp_path / "e.parquet"
    pq.write_table(pa.table({"event_id": ["1", "2"], "n": [1, 2]}), path)
    raw = read_input(path)
    assert raw.table.column(ROW).to_pylist() == [1, 2]
    assert raw.table.column("n").type == pa.int64()
    truncated = write(tmp_path / "cut.parquet", path.read_bytes()[:-20])
    with pytest.raises(InputFileError, match="unreadable Parquet"):
        read_input(truncated)


def test_format_is_taken_from_the_extension():
    assert file_format(Path("a.CSV")) == "csv"
    assert file_format(Path("a.jsonl")) == "jsonl"
    assert file_format(Path("a.ndjson")) == "jsonl"
    assert file_format(Path("a.parquet")) == "parquet"


def test_a_json_array_of_records_is_read_and_other_items_are_unreadable(tmp_path):
    document = [{"event_id": "1", "flag": True}, 7, {"event_id": "2", "nested": {"a": [1]}}]
    raw = read_input(write(tmp_path / "events.json", json.dumps(document, indent=2)))
    assert raw.table.column(ROW).to_pylist() == [1, 3]
    assert raw.table.column("flag").to_pylist() == ["true", None]  # JSON text, as in CSV
    assert json.loads(raw.table.column("nested").to_pylist()[1]) == {"a": [1]}
    assert [(item.row, item.reason) for item in raw.unreadable] == [
        (2, "not a JSON object (number)")
    ]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("numbers.json", b"[1, 2, 3]", "is a JSON array of numbers, not of records"),
        ("broken.json", b'[{"a": 1},', "invalid JSON at line 1"),
        ("export.csv", b"PAR1\x00\x00binary", "is a Parquet file: name it .parquet"),
        ("export.csv", b"\x1f\x8b\x08\x00", "gzip-compressed: decompress it first"),
        ("contacts.csv", b"PK\x03\x04\x14\x00", "ZIP archive (an Excel workbook?"),
        ("report.csv", b"%PDF-1.7\n", "a PDF document"),
    ],
)
def test_files_of_the_wrong_shape_are_named_for_what_they_are(tmp_path, name, content, message):
    path = write(tmp_path / name, content)
    with pytest.raises(InputFileError) as error:
        read_input(path)
    assert str(error.value).startswith(f"{path}: ")
    assert message in str(error.value)


def test_a_folder_or_a_missing_file_is_named_for_what_it_is(tmp_path):
    with pytest.raises(InputFileError, match="is a folder, not a file"):
        read_input(tmp_path)
    with pytest.raises(InputFileError, match="no such file"):
        read_input(tmp_path / "missing.csv")


def test_repeated_and_empty_column_names_are_kept_apart_and_said(tmp_path):
    content = "email,Billing Contact,,Billing Contact,Billing Contact,\nx@y.co,a,b,c,d,\n"
    raw = read_input(write(tmp_path / "export.csv", content))
    assert raw.table.column_names == [
        "email",
        "Billing Contact",
        "column 3",
        "Billing Contact (2)",
        "Billing Contact (3)",
        "column 6",
        ROW,
    ]
    assert raw.table.column("Billing Contact (3)").to_pylist() == ["d"]
    assert raw.notes == [
        "column 3 has no name: kept as 'column 3'",
        "column 6 has no name: kept as 'column 6'",
        "the header repeats 'Billing Contact' 3 times: kept apart as 'Billing Contact', "
        "'Billing Contact (2)', 'Billing Contact (3)'",
    ]


def test_one_json_object_is_one_record_unless_it_wraps_records(tmp_path):
    path = write(tmp_path / "one.json", '{\n  "event_id": "1",\n  "n": 2\n}\n')
    raw = read_input(path)
    assert raw.table.column("event_id").to_pylist() == ["1"] and raw.document is None
    page = write(tmp_path / "page.json", json.dumps({"events": [{"id": "a"}, {"id": "b"}]}))

    def unwrap(document):
        return (document["events"], "a page") if "events" in document else None

    raw = read_input(page, unwrap)
    assert raw.table.column("id").to_pylist() == ["a", "b"] and raw.document == "a page"
    assert raw.table.column(ROW).to_pylist() == [1, 2]
