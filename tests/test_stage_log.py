"""$CORESET_STAGE_LOG: each stage appends one JSON line (its name, arguments, wall time and peak
RSS) after it succeeds, and nothing when the variable is unset."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import tiny_repo


def _run_check(cwd: Path, env: dict) -> None:
    subprocess.run([sys.executable, "-m", "coreset.stages.check"], cwd=cwd, check=True,
                   capture_output=True, env={**os.environ, **env,
                                             "PYTHONPATH": str(tiny_repo.ROOT / "src")})


def test_a_stage_appends_its_resources(tmp_path):
    repo = tiny_repo.make(tmp_path / "repo", {}, commit=False)
    log = tmp_path / "stages.jsonl"
    _run_check(repo, {"CORESET_STAGE_LOG": str(log)})
    _run_check(repo, {"CORESET_STAGE_LOG": str(log)})
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["stage"] for r in rows] == ["check", "check"]  # the module, not "__main__"
    for row in rows:
        assert row["argv"] == [] and row["wall_s"] >= 0
        # a Python process with numpy imported holds more than 10 MiB and far less than 10 GiB:
        # catches a KiB/MiB/byte unit slip
        assert 10 < row["peak_rss_mib"] < 10_000


def test_nothing_is_written_without_the_variable(tmp_path):
    repo = tiny_repo.make(tmp_path / "repo", {}, commit=False)
    env = {k: v for k, v in os.environ.items() if k != "CORESET_STAGE_LOG"}
    subprocess.run([sys.executable, "-m", "coreset.stages.check"], cwd=repo, check=True,
                   capture_output=True, env={**env, "PYTHONPATH": str(tiny_repo.ROOT / "src")})
    assert sorted(p.name for p in repo.iterdir() if p.suffix == ".jsonl") == []
