"""Atomic artifact I/O: every output is written to a temporary name and renamed into place, so an
interrupted stage never leaves a half-written file that DVC would cache."""

from __future__ import annotations

import glob
import json
import math
import os
import shutil
import struct
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

# --- the launcher's liveness: a stage whose `dvc` was killed must not overwrite a newer run ---
# DVC runs a stage's cmd through a shell; when `dvc` is killed the stage keeps running, and a newer
# `dvc repro` may meanwhile rerun the stage. The stage records its launcher at its start (its
# parent and, through the shells in between, the first ancestor that is not a shell: `dvc`), by pid
# AND start time (a pid can be reused), and every atomic write checks, just before its rename, that
# they all still run: an orphan never replaces an output. The window between the check and the
# rename is one system call.

_SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "fish", "busybox"})
_LAUNCHER: list[tuple[int, str]] = []  # (pid, start time) of the parent chain; empty = unchecked


class LauncherGone(RuntimeError):
    """The process that started this stage is gone: the output is not written (one line)."""


def _proc(pid: int) -> tuple[str, int, str] | None:
    """(command name, parent pid, start time) from /proc, or None when the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    comm = stat[stat.index("(") + 1 : stat.rindex(")")]
    fields = stat[stat.rindex(")") + 2 :].split()
    return comm, int(fields[1]), fields[19]  # state ppid ... starttime (field 22 of proc(5))


def pin_launcher() -> None:
    """Record this process's launcher (see above); called by every stage at its start."""
    chain = []
    pid = os.getppid()
    while pid > 1:
        info = _proc(pid)
        if info is None:  # no /proc (macOS): the parent pid alone
            chain = [(os.getppid(), "")]
            break
        chain.append((pid, info[2]))
        if info[0] not in _SHELLS:
            break
        pid = info[1]
    _LAUNCHER[:] = chain


def check_launcher(path: str | Path) -> None:
    """Raise LauncherGone unless every recorded launcher process still runs."""
    for pid, start in _LAUNCHER:
        info = _proc(pid)
        alive = (os.getppid() == pid) if start == "" else (info is not None and info[2] == start)
        if not alive:
            raise LauncherGone(f"{path}: not written: the process that started this stage (pid "
                               f"{pid}, e.g. dvc) is gone, and a newer run may own this output")


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        tmp.chmod(0o644)  # mkstemp makes 0600 files; artifacts are meant to be shared
        check_launcher(path)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary directory; it replaces ``path`` (a directory) only on success. On
    failure nothing is left behind, not even the parent folders it had to create."""
    path = Path(path)
    created = [d for d in path.parents if not d.exists()]  # innermost first
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    done = False
    try:
        yield tmp
        tmp.chmod(0o755)
        check_launcher(path)
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
        done = True
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        for folder in [] if done else created:
            try:
                folder.rmdir()
            except OSError:  # not empty: something else lives there now
                break


def temp_siblings(path: str | Path) -> list[Path]:
    """The temporary files or folders ``atomic_path``/``atomic_dir`` make for ``path``
    (``.<name>.<random>.tmp`` next to it): left behind only when a process was killed."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    return sorted(path.parent.glob(f".{glob.escape(path.name)}.*.tmp"))


def remove_stale_temps(paths: Iterable[str | Path]) -> list[Path]:
    """Delete the leftover temporaries of ``paths`` (a stage's own outputs, at its start: one
    stage owns each output, so no live writer can own them). Returns what was removed."""
    removed = []
    for path in paths:
        for tmp in temp_siblings(path):
            if tmp.is_dir() and not tmp.is_symlink():
                shutil.rmtree(tmp)
            else:
                tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def save_npz(path: str | Path, **arrays: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


class DamagedFile(ValueError):
    """An artifact that exists but cannot be read as what it should be (truncated, garbage, a
    pickle, a missing array or key); stages/_cli.py prints it with the command that restores it."""

    def __init__(self, path: str | Path, why: str) -> None:
        super().__init__(f"{path}: {' '.join(why.split())[:160]}")
        self.path, self.why = Path(path), why


class MissingEntry(DamagedFile, KeyError):
    """A key or array an artifact should hold is absent (still a KeyError for callers)."""

    def __str__(self) -> str:
        return ValueError.__str__(self)


class Entries(dict):
    """A dict read from ``path``: a missing key raises MissingEntry naming the file."""

    def __init__(self, path: str | Path, items: dict) -> None:
        super().__init__(items)
        self.path = path

    def __missing__(self, key: object) -> None:
        raise MissingEntry(self.path, f"no entry {key!r} (it has {', '.join(map(str, self))})")


_UNREADABLE = (ValueError, OSError, EOFError, zipfile.BadZipFile, UnicodeDecodeError)


def load_npz(path: str | Path, mmap: bool = False) -> dict[str, np.ndarray]:
    """The arrays of an .npz, never unpickled; a damaged file raises DamagedFile.

    ``mmap``: memory-map the members that ``np.savez`` stored uncompressed (read-only
    ``np.memmap``), so that an array larger than RAM (ImageNet-shaped softmax outputs: S N C
    float32 = 15 GB) is paged in as a selector reads it; compressed members are read whole. The
    file format does not change. A mapped member's CRC is not checked (that would read it all);
    its zip and .npy headers and its size are.
    """
    try:
        if mmap:
            return Entries(path, _mapped_npz(Path(path)))
        with np.load(path, allow_pickle=False) as z:
            return Entries(path, {k: z[k] for k in z.files})
    except FileNotFoundError:
        raise
    except _UNREADABLE as err:
        raise DamagedFile(path, f"not a readable .npz ({err})") from None


_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature ... file name length, extra field length


def _mapped_npz(path: Path) -> dict[str, np.ndarray]:
    out = {}
    with zipfile.ZipFile(path) as zf, open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        for info in zf.infolist():
            if not info.filename.endswith(".npy"):
                continue
            name = info.filename[: -len(".npy")]
            if info.compress_type != zipfile.ZIP_STORED:
                with zf.open(info) as member:
                    out[name] = np.lib.format.read_array(member, allow_pickle=False)
                continue
            out[name] = _mapped_member(path, f, info, size)
    return out


def _mapped_member(path: Path, f: object, info: zipfile.ZipInfo, size: int) -> np.ndarray:
    """The stored .npy member ``info`` as a read-only memmap: the local zip header gives the
    member's data offset, the .npy header its dtype, shape and order."""
    f.seek(info.header_offset)
    sig, name_len, extra_len = _LOCAL_HEADER.unpack(f.read(_LOCAL_HEADER.size))
    if sig != b"PK\x03\x04":
        raise ValueError(f"{info.filename}: no local zip header at {info.header_offset}")
    start = info.header_offset + _LOCAL_HEADER.size + name_len + extra_len
    f.seek(start)
    version = np.lib.format.read_magic(f)
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
        np.lib.format.read_array_header_2_0
    shape, fortran, dtype = read(f)
    if dtype.hasobject:
        raise ValueError(f"{info.filename}: an object array (it would need unpickling)")
    offset = f.tell()
    nbytes = math.prod(shape) * dtype.itemsize
    if offset + nbytes > min(start + info.file_size, size):
        raise ValueError(f"{info.filename}: {nbytes} bytes of data announced, fewer stored")
    if nbytes == 0:
        return np.empty(shape, dtype=dtype, order="F" if fortran else "C")
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape,
                     order="F" if fortran else "C")


def load_npy(path: str | Path, mmap: bool = False) -> np.ndarray:
    """A .npy array (memory-mapped read-only when ``mmap``), never unpickled; a damaged file
    raises DamagedFile."""
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except FileNotFoundError:
        raise
    except _UNREADABLE as err:
        raise DamagedFile(path, f"not a readable .npy array ({err})") from None


def save_json(path: str | Path, obj: object) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def load_json(path: str | Path) -> dict:
    """A JSON object; a damaged file (or one that is not an object) raises DamagedFile."""
    try:
        obj = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise
    except _UNREADABLE as err:
        raise DamagedFile(path, f"not readable JSON ({err})") from None
    if not isinstance(obj, dict):
        raise DamagedFile(path, f"a JSON {type(obj).__name__}, not an object")
    return Entries(path, obj)


def save_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
