"""A stage whose launcher (`dvc`) was killed keeps running, but never writes its outputs: the
atomic writes check, just before their rename, that the launcher recorded at the stage's start
(pid and start time, through the shell DVC runs the cmd in) still runs."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# the stage: records its launcher, says it is ready, waits for `go`, then writes its output
STAGE = """
import sys, time
from pathlib import Path
from coreset import io
io.pin_launcher()
Path("ready").write_text("")
while not Path("go").exists():
    time.sleep(0.02)
try:
    io.save_text("out.txt", "stale run\\n")
except io.LauncherGone as err:
    Path("refused").write_text(str(err))
"""
# `dvc`: runs the stage through a shell, as DVC runs a stage's cmd
LAUNCHER = "import subprocess, sys; subprocess.run([sys.argv[1], '-c', sys.argv[2]])"


def wait_for(path: Path, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < end, f"{path} did not appear"
        time.sleep(0.02)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc (Linux)")
@pytest.mark.parametrize("kill", [True, False])
def test_an_orphaned_stage_does_not_overwrite_outputs(tmp_path, kill):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    shell_cmd = f"{sys.executable} -c '{STAGE}'; true"  # the shell stays (no exec)
    dvc = subprocess.Popen([sys.executable, "-c", LAUNCHER, "sh", shell_cmd], cwd=tmp_path,
                           env=env, start_new_session=True)
    wait_for(tmp_path / "ready")
    if kill:
        dvc.send_signal(signal.SIGKILL)  # the shell and the stage keep running
        dvc.wait()
        (tmp_path / "out.txt").write_text("newer run\n")  # a newer run wrote the output
    (tmp_path / "go").write_text("")
    if kill:
        wait_for(tmp_path / "refused")
        assert (tmp_path / "out.txt").read_text() == "newer run\n"
        assert "out.txt: not written: the process that started this stage" in \
            (tmp_path / "refused").read_text()
    else:
        dvc.wait(timeout=60)
        assert (tmp_path / "out.txt").read_text() == "stale run\n"
        assert not (tmp_path / "refused").exists()
    if kill:  # the orphaned shell, if it has not ended yet
        with contextlib.suppress(ProcessLookupError):
            os.killpg(dvc.pid, signal.SIGKILL)
