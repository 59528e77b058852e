"""Artifacts on disk between stages.

Every stage reads and writes JSONL. Writes are atomic (temp file in the same folder, fsync,
rename) so that an interrupted run never leaves a half-written artifact that a later stage
would trust. Reads report the file, line and field of any bad record.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from qrdistill.errors import DataError

log = logging.getLogger(__name__)


def repair_torn_tail(path: str | os.PathLike) -> bool:
    """Cut a torn last line off one of our own append-only JSONL files; True if it repaired one.

    Rows are appended one `write` at a time, so a crash (or a full disk) can leave only a prefix
    of the last row, without its newline. Such a tail is removed (or, if it is a whole JSON
    object that only lacks its newline, completed) and the repair is logged. Lines before it are
    left alone: damage there is not a torn tail and is reported by the reader.
    """
    path = Path(path)
    with path.open("rb+") as handle:
        data = handle.read()
        if not data or data.endswith(b"\n"):
            return False
        start = data.rfind(b"\n") + 1
        tail = data[start:]
        try:
            whole = isinstance(json.loads(tail.decode("utf-8")), dict)
        except (UnicodeDecodeError, json.JSONDecodeError):
            whole = False
        if whole:
            handle.write(b"\n")
        else:
            handle.truncate(start)
        handle.flush()
        os.fsync(handle.fileno())
    line = data.count(b"\n") + 1
    log.warning(
        "%s:%d: repaired a torn last line left by an interrupted run (%s, %d bytes)",
        path,
        line,
        "completed its newline" if whole else "removed it",
        len(tail),
    )
    return True


def current_umask() -> int:
    """The process umask, read without changing it where the OS shows it (Linux /proc); elsewhere
    set and restored at once."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def umask_modes(folder: str | os.PathLike) -> None:
    """Give every file under `folder` the mode a plain `open` would (0o666 less the umask).
    For folders written by libraries that create private files (safetensors writes 0o600)."""
    mode = 0o666 & ~current_umask()
    for path in Path(folder).rglob("*"):
        if path.is_file():
            os.chmod(path, mode)


@contextmanager
def atomic_open(
    path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8"
) -> Iterator[TextIO]:
    """Open a temp file beside `path`; on success fsync and rename it over `path`. The file gets
    the mode a plain `open` would give it (0o666 less the umask), not mkstemp's private 0o600."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.chmod(tmp, 0o666 & ~current_umask())
    binary = "b" in mode
    try:
        with os.fdopen(fd, mode, encoding=None if binary else encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | os.PathLike, obj: Any) -> None:
    with atomic_open(path) as handle:
        json.dump(obj, handle, indent=2, ensure_ascii=False, default=str)
        handle.write("\n")


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, not a JSON file") from None
    except UnicodeDecodeError as err:
        line = path.read_bytes()[: err.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not UTF-8 text; fix or remove this file") from None
    except json.JSONDecodeError as err:
        raise DataError(f"{path}:{err.lineno}: invalid JSON ({err.msg})") from None


def write_jsonl(path: str | os.PathLike, rows: Iterable[Any]) -> int:
    """Write rows (dicts or pydantic models) atomically; return how many were written."""
    count = 0
    with atomic_open(path) as handle:
        for row in rows:
            if hasattr(row, "model_dump"):
                row = row.model_dump(mode="json")
            handle.write(json.dumps(row, ensure_ascii=False, default=str))
            handle.write("\n")
            count += 1
    return count


def iter_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, dict]]:
    """Yield (line_number, record) for each non-blank line; a bad line raises DataError."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if not path.is_file():
        raise DataError(f"{path}: is a directory, not a JSONL file")
    with path.open("rb") as handle:
        for lineno, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise DataError(
                    f"{path}:{lineno}: not UTF-8 text (byte 0x{raw[err.start]:02x} at "
                    f"column {err.start + 1}); fix or remove this line"
                ) from None
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(
                    f"{path}:{lineno}: not valid JSON ({err.msg} at column {err.colno}); "
                    "fix or remove this line"
                ) from None
            if not isinstance(record, dict):
                raise DataError(
                    f"{path}:{lineno}: expected a JSON object, got {type(record).__name__}"
                )
            yield lineno, record


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    return [record for _, record in iter_jsonl(path)]


def read_jsonl_as(path: str | os.PathLike, model: type) -> list:
    """Read a JSONL file into pydantic models; a record that does not validate names file:line:field."""
    from pydantic import ValidationError

    items = []
    for lineno, record in iter_jsonl(path):
        try:
            items.append(model.model_validate(record))
        except ValidationError as err:
            first = err.errors()[0]
            field = ".".join(str(part) for part in first["loc"]) or "(record)"
            raise DataError(f"{path}:{lineno}: field '{field}': {first['msg']}") from None
    return items
