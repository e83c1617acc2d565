"""The inbox of the daily flow: files dropped there are ingested once, then filed away."""

from datetime import UTC, datetime
from pathlib import Path

SUFFIXES = (".csv", ".jsonl", ".ndjson", ".json", ".parquet")
FILED = {
    "loaded": "processed",
    "already_ingested": "processed",
    "nothing_new": "processed",
    "rejected": "rejected",
}


def pending_files(inbox: Path) -> list[Path]:
    """Files waiting in the inbox, oldest first (contacts dropped before their events load
    first); hidden and partial files (`.name`, `name.tmp`) are left for the next run."""
    if not inbox.is_dir():
        return []
    files = [
        path
        for path in inbox.iterdir()
        if path.is_file() and not path.name.startswith(".") and path.suffix.lower() in SUFFIXES
    ]
    return sorted(files, key=lambda path: (path.stat().st_mtime, path.name))


def file_away(path: Path, status: str) -> Path:
    """Move an ingested file to `processed/` or `rejected/` beside it (never overwriting)."""
    folder = path.parent / FILED.get(status, "rejected")
    folder.mkdir(exist_ok=True)
    target = folder / path.name
    if target.exists():
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        target = folder / f"{path.stem}.{stamp}{path.suffix}"
    return path.rename(target)
