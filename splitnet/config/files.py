"""Read a small text file that an operator names: regular files only, with a byte limit.

Note: special files. ``stat`` says 0 bytes for ``/dev/zero`` and a FIFO, so a size check alone
lets ``read_bytes`` run until memory is gone (a device) or block forever (a FIFO with no writer).
The file is therefore checked to be a regular file *before* it is opened, opened without
blocking, checked again on the open descriptor (it may have been swapped), and read with a limit.
``/dev/null`` alone is let through, as empty text.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = ["MAX_TEXT_FILE_BYTES", "read_regular_bytes", "read_text_file"]

MAX_TEXT_FILE_BYTES = 4 * 1024 * 1024


def read_text_file(path: Path, limit: int = MAX_TEXT_FILE_BYTES) -> str:
    """Return ``path``'s UTF-8 text; raise ``ValueError`` naming the rule it breaks."""
    try:
        info = path.stat()
        if stat.S_ISCHR(info.st_mode) and os.path.samestat(info, os.stat(os.devnull)):
            return ""  # /dev/null: the usual way to say "nothing", and it ends at once
    except OSError as exc:
        raise ValueError(f"cannot read it: {exc.strerror or exc}") from None
    mode = info.st_mode
    if not stat.S_ISREG(mode):
        raise ValueError(f"is {_kind(mode)}, not a regular file; expected a text file")
    raw, _ = read_regular_bytes(path, limit)  # checked again on the open file (swapped?)
    if len(raw) > limit:
        raise ValueError(f"holds more than {limit} bytes; the limit is {limit}")
    try:
        content = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"is not UTF-8 text (byte {exc.start})") from None
    if "\x00" in content:
        raise ValueError("contains NUL bytes; expected text")
    return content


def read_regular_bytes(path: Path, limit: int) -> tuple[bytes, int]:
    """Read at most ``limit + 1`` bytes of a regular file; return them and the file's size.

    Opened without blocking and checked on the open descriptor (Note: special files); raises
    ``ValueError`` ("cannot read it: ...", "is a FIFO (named pipe), not a regular file").
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise ValueError(f"cannot read it: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"is {_kind(info.st_mode)}, not a regular file")
        return handle.read(limit + 1), info.st_size


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"
