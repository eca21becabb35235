"""Export files in the server's export directory, written whole or not at all (a temporary
file renamed into place), readable by the owner only: they hold personal data."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.partial")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def write_csv(path: Path, header: Sequence[str] | None, rows: Sequence[Sequence[str]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if header is not None:
        writer.writerow(header)
    writer.writerows(rows)
    _write_atomically(path, buffer.getvalue().encode("utf-8"))


def write_jsonl(path: Path, rows: Sequence[dict[str, str]]) -> None:
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    _write_atomically(path, data.encode("utf-8"))


class ExportFileWriter:
    """The export files on the local file system (``service_layer.ports.ExportFiles``)."""

    def write_csv(
        self, path: Path, header: Sequence[str] | None, rows: Sequence[Sequence[str]]
    ) -> None:
        write_csv(path, header, rows)

    def write_jsonl(self, path: Path, rows: Sequence[dict[str, str]]) -> None:
        write_jsonl(path, rows)
