"""Files written whole or not at all, and folders checked before they are trusted, for every floor
that writes or reads one (the run folder's tables, summary and figures, the checkpoint, the
per-client store's state files, the report page).

A results folder is exchanged between people, so its entries are hostile: a received folder may
ship ``.report.html.tmp -> ~/.bashrc``. Two rules keep every write inside the folder:

- a temporary file is created exclusively under a random name (``tempfile.mkstemp``:
  ``O_CREAT | O_EXCL``, which refuses an existing name, a symbolic link included, dangling or not),
  then renamed over the target (``os.replace`` replaces a link itself, never what it points to);
- a received folder whose entries are symbolic links (or pipes, devices, sockets) is refused
  before anything in it is read or written (:func:`check_received_folder`).
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterator


class UnsafeFolderError(ValueError):
    """A received folder holds an entry that could redirect a read or a write outside it (a
    symbolic link) or block a read (a pipe, a device); the message names the entry."""


def _process_umask() -> int:
    """The process's umask, read once (setting it back at once): files made by ``mkstemp`` are
    private (0600), and results should keep the permissions any other file of the user gets."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_process_umask()


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[BinaryIO]:
    """A new binary file that becomes ``path`` when the ``with`` body finishes, and is removed
    when it fails (a full disk leaves neither a half file nor the temporary one).

    The temporary file is created beside ``path`` (a rename stays on one file system) under a name
    no one could have planted, so no link can redirect the write."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, _FILE_MODE)
        with os.fdopen(fd, "wb") as handle:
            yield handle
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write(path: Path, data: str | bytes) -> None:
    """Writes ``path`` whole or not at all (:func:`atomic_file`); text as UTF-8."""
    with atomic_file(path) as handle:
        handle.write(data if isinstance(data, bytes) else data.encode("utf-8"))


def refuse_link(path: Path, *, what: str) -> None:
    """UnsafeFolderError when ``path`` is a symbolic link or exists as something other than a plain
    file or folder: ``what`` says whose entry it is (a run folder, a sweep folder)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:  # a name too long, a folder without permission
        raise UnsafeFolderError(f"{path}: cannot be checked ({exc.strerror}); {what} is refused") from exc
    if stat.S_ISLNK(mode):
        raise UnsafeFolderError(f"{path} is a symbolic link: {what} is refused, since reading or writing through it "
                                "would reach outside the folder; replace the link by the file itself (or remove it)")
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise UnsafeFolderError(f"{path} is not a plain file or folder (a pipe, socket or device): {what} is "
                                "refused; remove that entry")


def check_received_folder(folder: Path, *, what: str = "the run folder", deep: tuple[str, ...] = ()) -> None:
    """Refuses ``folder`` (UnsafeFolderError naming the entry) when any entry in it, or anywhere
    under its sub-folders named in ``deep`` (``client_state``), is a symbolic link or not a plain
    file or folder; nothing has been read or written when it refuses.

    The folder itself may be reached through a link (the user chose the path); what it holds may
    not, so that a received ``client_state -> ../other-run/client_state`` cannot have another run's
    state files deleted and rewritten by a resume."""
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return
    except OSError as exc:
        raise UnsafeFolderError(f"{folder}: cannot be listed ({exc.strerror}); {what} is refused") from exc
    for entry in entries:
        refuse_link(Path(entry.path), what=what)
        if entry.name in deep and entry.is_dir(follow_symlinks=False):
            for root, folders, files in os.walk(entry.path, followlinks=False):
                for name in (*folders, *files):
                    refuse_link(Path(root, name), what=what)
