"""Round checkpoints of one client under ``CHECKPOINT_DIR``: safetensors plus a JSON manifest.

For round r (0-based, the last completed one) client k writes ``client{k}-round{r:06d}``:
``.safetensors`` (every tensor, by name) and ``.json`` (the manifest: format version, plan
fingerprint and facts, client, round, the tensor file's name, size and sha256, and JSON-ready
``extra``: optimizer groups, result rows...). Nothing is ever pickled.

Note: commit order. Each file is written to a temporary name, fsynced, renamed into place and
the folder fsynced; the tensor file first, the manifest last: a checkpoint exists once its
manifest does, and a crash at any point leaves either the whole checkpoint or none. Older
checkpoints beyond ``keep`` are removed manifest first, for the same reason.

Reading (:meth:`CheckpointStore.latest`) takes the newest checkpoint that verifies: manifest
read with a byte limit, regular files only (Note: special files, in
:mod:`splitnet.config.files`), tensor file of the recorded size and sha256. A truncated or
corrupt one is skipped with a one-line warning and the one before it is used. A checkpoint of
another plan is refused (:class:`~splitnet.errors.PlanMismatch`) naming both fingerprints and
what differs: it is never silently skipped. A plan derived after a drop
(:mod:`splitnet.plan.drop`) also reads its ancestors' checkpoints (``accepted``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from splitnet.config.files import read_regular_bytes, read_text_file
from splitnet.errors import PlanMismatch
from splitnet.plan.plan import describe_difference

__all__ = ["FORMAT_VERSION", "MAX_MANIFEST_BYTES", "MAX_TENSOR_BYTES", "Checkpoint",
           "CheckpointStore"]

log = logging.getLogger("splitnet.checkpoints")

FORMAT_VERSION = 1
MAX_MANIFEST_BYTES = 64 * 1024 * 1024  # result rows of a long run stay far below
MAX_TENSOR_BYTES = 64 * 1024 ** 3
_NAME = re.compile(r"client(\d+)-round(\d{6,})\.json")


@dataclass(frozen=True)
class Checkpoint:
    """One client's state after ``round`` (0-based): named tensors and JSON-ready facts."""

    client: int
    round: int
    fingerprint: str
    tensors: dict[str, torch.Tensor]
    extra: dict[str, Any] = field(default_factory=dict)


class CheckpointStore:
    """Writes and reads client ``client``'s checkpoints of plan ``fingerprint`` in ``folder``."""

    def __init__(self, folder: Path, client: int, fingerprint: str, facts: dict[str, Any],
                 keep: int, accepted: tuple[str, ...] = ()) -> None:
        if keep < 0:
            raise ValueError(f"keep must be at least 0, got {keep}")
        self.folder = folder
        self.client = client
        self.fingerprint = fingerprint
        self.facts = facts
        self.keep = keep
        self.accepted = accepted  # other plans whose checkpoints this one goes on from

    def stem(self, round_: int) -> str:
        """Return the file name of round ``round_``'s checkpoint, without its suffix."""
        return f"client{self.client}-round{round_:06d}"

    def rounds(self) -> list[int]:
        """Return the rounds this client has a manifest for, oldest first (not yet verified)."""
        if not self.folder.is_dir():
            return []
        found = []
        for path in self.folder.iterdir():
            match = _NAME.fullmatch(path.name)
            if match and int(match.group(1)) == self.client:
                found.append(int(match.group(2)))
        return sorted(found)

    def write(self, round_: int, tensors: dict[str, torch.Tensor],
              extra: dict[str, Any] | None = None) -> Path:
        """Write round ``round_``'s checkpoint (Note: commit order); return its manifest path."""
        self.folder.mkdir(parents=True, exist_ok=True)
        data = save_safetensors(tensors)
        stem = self.stem(round_)
        manifest = {
            "format": FORMAT_VERSION, "fingerprint": self.fingerprint, "facts": self.facts,
            "client": self.client, "round": round_, "tensors": f"{stem}.safetensors",
            "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
            "extra": extra or {},
        }
        _write_atomically(self.folder / f"{stem}.safetensors", data)
        path = self.folder / f"{stem}.json"
        _write_atomically(path, json.dumps(manifest, sort_keys=True).encode())
        self._prune()
        return path

    def latest(self) -> Checkpoint | None:
        """Return the newest checkpoint that verifies (None: none does); refuse another plan."""
        for round_ in reversed(self.rounds()):
            try:
                return self.read(round_)
            except ValueError as exc:
                log.warning("client %d: checkpoint %s skipped: %s", self.client,
                            self.folder / f"{self.stem(round_)}.json", exc)
        return None

    def read(self, round_: int) -> Checkpoint:
        """Read and verify round ``round_``'s checkpoint.

        Raise ``ValueError`` naming what is wrong (missing, truncated, corrupt), or
        :class:`PlanMismatch` when it belongs to another plan.
        """
        path = self.folder / f"{self.stem(round_)}.json"
        try:
            manifest = json.loads(read_text_file(path, MAX_MANIFEST_BYTES))
        except json.JSONDecodeError as exc:
            raise ValueError(f"the manifest is not JSON ({exc.msg})") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_VERSION:
            raise ValueError(f"the manifest is not format {FORMAT_VERSION}")
        fingerprint = manifest.get("fingerprint")
        if fingerprint != self.fingerprint and fingerprint not in self.accepted:
            self._refuse(path, manifest)
        stem = self.stem(round_)
        expected = {"client": self.client, "round": round_, "tensors": f"{stem}.safetensors"}
        for key, value in expected.items():
            if manifest.get(key) != value:
                raise ValueError(f"the manifest says {key}={manifest.get(key)!r}, "
                                 f"expected {value!r}")
        size, digest, extra = manifest.get("bytes"), manifest.get("sha256"), manifest.get("extra")
        if not isinstance(size, int) or not isinstance(digest, str) or not isinstance(extra,
                                                                                       dict):
            raise ValueError("the manifest lacks the tensor file's size, sha256 or extra facts")
        data = _read_bytes(self.folder / f"{stem}.safetensors", size)
        if hashlib.sha256(data).hexdigest() != digest:
            raise ValueError("the tensor file's sha256 differs from the manifest's (corrupt)")
        try:
            tensors = load_safetensors(data)
        except SafetensorError as exc:
            raise ValueError(f"the tensor file is not safetensors ({exc})") from None
        return Checkpoint(self.client, round_, str(fingerprint), tensors, extra)

    def _refuse(self, path: Path, manifest: dict[str, Any]) -> None:
        theirs = manifest.get("fingerprint")
        facts = manifest.get("facts")
        what = (describe_difference(self.facts, facts, self.client, self.client,
                                    labels=("this run", "the checkpoint"))
                if isinstance(facts, dict) else "its plan facts are not recorded")
        raise PlanMismatch(
            f"client {self.client}: checkpoint {path} belongs to plan {theirs}, this run's plan "
            f"is {self.fingerprint}; they differ in {what}. Move {self.folder} away or set "
            "RESUME=never to start from round 0")

    def _prune(self) -> None:
        rounds = self.rounds()
        for round_ in rounds[:-self.keep]:
            stem = self.stem(round_)
            for suffix in (".json", ".safetensors"):  # Note: commit order
                (self.folder / f"{stem}{suffix}").unlink(missing_ok=True)


def _write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` by a fsynced temporary file renamed into place."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def _read_bytes(path: Path, size: int) -> bytes:
    """Read a regular file of exactly ``size`` bytes (Note: special files); else ValueError."""
    if not 0 <= size <= MAX_TENSOR_BYTES:
        raise ValueError(f"the manifest gives {size} bytes; the limit is {MAX_TENSOR_BYTES}")
    try:
        data, on_disk = read_regular_bytes(path, size)
    except ValueError as exc:
        raise ValueError(f"{path.name}: {exc}") from None
    if on_disk != size:
        raise ValueError(f"{path.name} holds {on_disk} bytes, the manifest says {size} "
                         "(truncated)")
    if len(data) != size:
        raise ValueError(f"{path.name} holds {len(data)} bytes, the manifest says {size}")
    return data
