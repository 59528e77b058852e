"""Finished requests on disk, so that a rerun does only what is missing.

Each completion is committed the moment it arrives (SQLite in WAL mode, one row per request), so
a `kill -9` loses at most the requests in flight. The key is a hash of everything that decides
what the request produces; a changed prompt, model or sampling parameter is a new request.

A row keeps the completion as the model sent it: the reply, the server's reasoning field
(`thinking`) and the token counts, reasoning tokens among them. Caches written before the last
two columns existed gain them, empty, when opened (`_COLUMNS_ADDED`).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from pathlib import Path

from qrdistill.records import Generation

# Columns added after the first release, with what an older row holds in them.
_COLUMNS_ADDED = {"thinking": "TEXT NOT NULL DEFAULT ''", "reasoning_tokens": "INTEGER DEFAULT 0"}


def request_key(backend: str, model: str, prompt: str, sampling: dict, sample_index: int) -> str:
    material = json.dumps(
        {
            "backend": backend,
            "model": model,
            "prompt": prompt,
            "sampling": sampling,
            "sample_index": sample_index,
        },
        sort_keys=True,
    )
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


class RequestCache:
    """key -> Generation. The database file is created by the first `put`, not before, so a run
    that fails before anything finishes leaves nothing behind."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._conn: sqlite3.Connection | None = None

    def _connect(self, create: bool) -> sqlite3.Connection | None:
        if self._conn is None and (create or self.path.exists()):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Autocommit: every put is its own transaction, durable once it returns.
            self._conn = sqlite3.connect(self.path, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA busy_timeout=10000")
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS completions (key TEXT PRIMARY KEY, label TEXT, "
                "text TEXT NOT NULL, prompt_tokens INTEGER, completion_tokens INTEGER, created REAL)"
            )
            present = {row[1] for row in self._conn.execute("PRAGMA table_info(completions)")}
            for column, kind in _COLUMNS_ADDED.items():
                if column not in present:
                    self._conn.execute(f"ALTER TABLE completions ADD COLUMN {column} {kind}")
        return self._conn

    def put(self, key: str, label: str, generation: Generation) -> None:
        self._connect(create=True).execute(
            "INSERT OR REPLACE INTO completions (key, label, text, prompt_tokens, "
            "completion_tokens, created, thinking, reasoning_tokens) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                key,
                label,
                generation.text,
                generation.prompt_tokens,
                generation.completion_tokens,
                time.time(),
                generation.thinking,
                generation.reasoning_tokens,
            ),
        )

    def get_many(self, keys: list[str]) -> dict[str, Generation]:
        conn = self._connect(create=False)
        found: dict[str, Generation] = {}
        if conn is None:
            return found
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), 500):  # SQLite caps the number of bound parameters
            chunk = unique[start : start + 500]
            rows = conn.execute(
                "SELECT key, text, prompt_tokens, completion_tokens, thinking, reasoning_tokens "
                f"FROM completions WHERE key IN ({','.join('?' * len(chunk))})",
                chunk,
            )
            for key, text, prompt_tokens, completion_tokens, thinking, reasoning in rows:
                found[key] = Generation(
                    text,
                    prompt_tokens,
                    completion_tokens,
                    thinking=thinking or "",
                    reasoning_tokens=reasoning or 0,
                )
        return found

    def __len__(self) -> int:
        conn = self._connect(create=False)
        return 0 if conn is None else conn.execute("SELECT COUNT(*) FROM completions").fetchone()[0]

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> RequestCache:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
