"""Files of one revision of the repository: the workspace from disk, a commit or an experiment
from git and the DVC cache. Shared by the report and by ``coreset export``."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import numpy as np

WORKSPACE = "workspace"


def git_blobs(root: str | Path, items: list[tuple[str, str]]) -> list[str | None]:
    """Contents of ``rev:path`` for each item (None where missing), in one git process."""
    if not items:
        return []
    query = "".join(f"{rev}:{path}\n" for rev, path in items).encode()
    out = subprocess.run(["git", "cat-file", "--batch"], cwd=root, input=query,
                         capture_output=True, check=True).stdout
    contents, pos = [], 0
    for _ in items:
        end = out.index(b"\n", pos)
        header = out[pos:end].split()
        if header[-1] == b"missing":
            contents.append(None)
            pos = end + 1
            continue
        size = int(header[2])
        contents.append(out[end + 1 : end + 1 + size].decode())
        pos = end + 1 + size + 1  # the content is followed by a newline
    return contents


class RevisionFiles:
    """Read artifacts of one revision: the workspace from disk, a commit from the DVC cache."""

    def __init__(self, root: str | Path, rev: str) -> None:
        self.root, self.rev = Path(root), rev
        self._fs = None

    def read(self, path: str) -> bytes:
        if self.rev == WORKSPACE:
            return (self.root / path).read_bytes()
        if self._fs is None:
            from dvc.api import DVCFileSystem

            self._fs = DVCFileSystem(str(self.root), rev=self.rev)
        with self._fs.open(path, "rb") as f:
            return f.read()

    def array(self, path: str, key: str | None = None) -> np.ndarray:
        """An .npy file, or the array ``key`` of an .npz file."""
        data = np.load(io.BytesIO(self.read(path)), allow_pickle=False)
        if key is None:
            return data
        with data:
            return data[key]

    def exists(self, path: str) -> bool:
        if self.rev == WORKSPACE:
            return (self.root / path).exists()
        try:
            self.read(path)
        except OSError:  # FileNotFoundError included
            return False
        return True
