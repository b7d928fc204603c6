"""Files written whole or not at all, for every floor that writes one (the run folder's tables
and summary, the checkpoint, the per-client store's state files, the report page)."""

from __future__ import annotations

import os
from pathlib import Path


def atomic_write(path: Path, data: str | bytes) -> None:
    """Writes ``path`` whole or not at all: a temporary file beside it, renamed over it, removed
    when the write fails (a full disk leaves neither a half file nor the temporary one)."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
