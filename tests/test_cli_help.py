"""Stage plumbing: --help prints the usage and does nothing else; a stage removes its own stale
temporaries at its start (and nobody else's); the outputs a stage declares are its dvc.yaml outs."""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import runpy
import subprocess
import sys
import tempfile
from pathlib import Path
from unittest import mock

import pytest
import yaml

from coreset.config import load
from coreset.stages import _cli

ROOT = Path(__file__).resolve().parents[1]
STAGES = sorted(p.stem for p in (ROOT / "src/coreset/stages").glob("[!_]*.py"))


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=env, capture_output=True,
                          text=True)


def run_here(module: str, *args: str) -> tuple[int, str]:
    """``python -m module args`` in this process (runpy is what ``-m`` runs; no second torch
    import): its exit status and standard output."""
    out = io.StringIO()
    # as in a fresh process, the module is not imported yet (runpy warns otherwise); the test
    # process's own copy is put back afterwards
    mine = sys.modules.pop(module, None)
    try:
        with mock.patch.object(sys, "argv", [module, *args]), contextlib.redirect_stdout(out):
            runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as end:
        return (end.code or 0) if isinstance(end.code, int) else 1, out.getvalue()
    finally:
        if mine is not None:
            sys.modules[module] = mine
    return 0, out.getvalue()


@pytest.mark.parametrize("stage", STAGES)
def test_stage_help_prints_usage_and_does_nothing(stage, tmp_path, monkeypatch):
    # a valid params.yaml is present: --help must not run the stage anyway (pretrain used to)
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    for flag in ("--help", "-h"):
        code, stdout = run_here(f"coreset.stages.{stage}", flag)
        assert code == 0
        assert f"Usage: python -m coreset.stages.{stage}" in stdout
    assert [p.name for p in tmp_path.iterdir()] == ["params.yaml"]


def test_running_a_stage_here_is_what_python_dash_m_runs(tmp_path, monkeypatch):
    """The in-process runner above, against a real ``python -m``: the same status and output."""
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    proc = run(tmp_path, "coreset.stages.check", "--help")
    monkeypatch.chdir(tmp_path)
    assert run_here("coreset.stages.check", "--help") == (proc.returncode, proc.stdout)


@pytest.mark.parametrize(("command", "usage"), [
    (("coreset", "--help"), "usage: coreset COMMAND"),
    (("coreset", "check", "--help"), "Usage: python -m coreset"),
    (("coreset.check", "-h"), "Usage: python -m coreset"),
])
def test_command_help(command, usage, tmp_path):
    proc = run(tmp_path, *command)
    assert proc.returncode == 0, proc.stderr
    assert usage in proc.stdout
    assert not list(tmp_path.iterdir())


def test_check_says_ok_on_the_default_file():
    proc = run(ROOT, "coreset", "check")
    assert (proc.returncode, proc.stdout.strip()) == (0, "params.yaml: ok")


def test_stage_rejects_unexpected_arguments(tmp_path):
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    proc = run(tmp_path, "coreset.stages.embed", "extra")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: unexpected arguments 'extra': this stage takes none (--help prints its usage)"]


# --- stale temporaries ---------------------------------------------------------------------------

def killed_write(path: Path) -> Path:
    """The temporary ``atomic_path(path)`` leaves when its process is killed inside it (the same
    mkstemp call; a SIGKILL gives its cleanup no chance)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    return Path(tmp)


def test_a_stage_removes_its_stale_temporaries_at_start(tmp_path, monkeypatch):
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    mine = killed_write(Path("data/embed.npz"))
    stale_dir = Path("data/.embed.npz.x1y2.tmp")
    stale_dir.mkdir()
    (stale_dir / "part").write_text("x")
    other = killed_write(Path("data/dynamics.npz"))  # pretrain's: not this stage's to remove
    assert mine.name.startswith(".embed.npz.") and mine.name.endswith(".tmp")
    seen = {}

    def main(p, argv):
        seen["left"] = sorted(x.name for x in Path("data").iterdir())

    monkeypatch.setattr(sys, "argv", ["embed"])
    _cli.run(main, _cli.no_args("data/embed.npz"))
    assert seen["left"] == [other.name]


def test_stale_temporaries_stay_when_the_params_are_bad(tmp_path, monkeypatch):
    tree = yaml.safe_load((ROOT / "params.yaml").read_text())
    tree["ratio"] = 7
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tree))
    monkeypatch.chdir(tmp_path)
    mine = killed_write(Path("data/embed.npz"))
    monkeypatch.setattr(sys, "argv", ["embed"])
    with pytest.raises(SystemExit):
        _cli.run(lambda p, argv: None, _cli.no_args("data/embed.npz"))
    assert mine.exists()  # nothing is touched before the whole file is valid


# --- declared outputs = dvc.yaml outs ------------------------------------------------------------

def dvc_outs(stage: dict, item: dict) -> set[str]:
    paths = set()
    for kind in ("outs", "metrics", "plots"):
        for entry in stage.get(kind, []):
            path = next(iter(entry)) if isinstance(entry, dict) else entry
            for k, v in item.items():
                path = path.replace(f"${{item.{k}}}", str(v))
            paths.add(path)
    return paths


@pytest.mark.parametrize(("stage", "module", "argv", "item"), [
    ("check", "check", [], {}), ("download", "download", [], {}), ("attacker", "attacker", [], {}),
    ("corrupt", "corrupt", [], {}), ("embed", "embed", [], {}), ("evaluate", "evaluate", [], {}),
    ("score", "score", ["el2n"], {"selector": "el2n"}),
    ("select", "select", ["el2n"], {"selector": "el2n"}),
    ("train", "train", ["el2n", "1"], {"selector": "el2n", "seed": 1}),
    ("train_full", "train", ["full", "1"], {"seed": 1}),
    ("pretrain", "pretrain", [], {}),
])
def test_declared_outputs_are_the_dvc_outs(stage, module, argv, item):
    p = load(ROOT / "params.yaml")
    stage_module = importlib.import_module(f"coreset.stages.{module}")
    declared = {str(x) for x in stage_module.outputs(p, argv)}
    outs = dvc_outs(yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"][stage], item)
    if stage == "pretrain":  # the curves folder's files, one per seed
        outs.remove("plots/curves/pretrain")
        outs |= {f"plots/curves/pretrain/seed{s}.csv" for s in p.pretrain.seeds}
    assert declared == outs
