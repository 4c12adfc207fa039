"""Exact code dependencies: every stage lists in dvc.yaml the project files its code uses, and no
others, so that a code change reruns exactly the stages it can affect.

Each stage of a tiny pipeline (every perturbation on, so that every code path is taken) runs in a
subprocess under tests/stage_probe.py, which records the project modules the stage's own code
reaches. The rule for params validation, which every stage runs first: config.py is a dependency
of every stage; what config.py loads only to validate (allowlists, selector parameter
declarations, the class-count check) cannot change a stage's output and is not, unless the
stage's own code uses it too (score and select use the selector modules).
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tiny_repo import merge

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
STAGES = SRC / "coreset" / "stages"
pytestmark = pytest.mark.integration

TINY = {
    "selectors": ["craig", "input_grad"],
    "seeds": [0],
    "pretrain": {"seeds": [0], "epochs": 1},
    "recipes": {"aum_threshold": {"params": {"epochs": 2}}},
    "attacker": {"epochs": 1},
    "train": {"epochs": 1},
    "corrupt": {"label_noise": {"rate": 0.1}, "images": {"rate": 0.05},
                "adversarial": {"rate": 0.05, "steps": 1}},
}
# (dvc.yaml stage, module, arguments), in pipeline order
RUNS = [
    ("check", "check", []), ("download", "download", []), ("attacker", "attacker", []),
    ("corrupt", "corrupt", []),
    ("pretrain", "pretrain", []), ("embed", "embed", []),
    ("score", "score", ["craig"]), ("score", "score", ["input_grad"]),
    ("score", "score", ["aum_threshold"]),  # trains (training.loop) inside the score stage
    ("select", "select", ["craig"]), ("select", "select", ["input_grad"]),
    ("train", "train", ["craig", "0"]), ("train", "train", ["input_grad", "0"]),
    ("train_full", "train", ["full", "0"]), ("evaluate", "evaluate", []),
]


def code_deps(stage: str) -> list[str]:
    deps = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"][stage]["deps"]
    return [d.rstrip("/") for d in deps if d.startswith("src/")]


def covered(path: str, deps: list[str]) -> bool:
    return any(path == d or path.startswith(d + "/") for d in deps)


@pytest.fixture(scope="module")
def reached(tmp_path_factory) -> dict[str, set[str]]:
    """dvc.yaml stage -> project files (relative to the repository) its runs reached."""
    work = tmp_path_factory.mktemp("deps")
    params = merge(yaml.safe_load((ROOT / "params.yaml").read_text()), TINY)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    out: dict[str, set[str]] = {}
    for stage, module, args in RUNS:
        record = work / "record.json"
        proc = subprocess.run(
            [sys.executable, str(ROOT / "tests" / "stage_probe.py"), str(record),
             f"coreset.stages.{module}", *args],
            cwd=work, env=env, capture_output=True, text=True)
        assert proc.returncode == 0, f"{stage} {args}: {proc.stderr[-2000:]}"
        rec = json.loads(record.read_text())
        files = {rec["stage"], *rec["files"]}
        out.setdefault(stage, set()).update(
            str(Path(f).relative_to(ROOT)) for f in files if Path(f).is_relative_to(SRC))
    return out


@pytest.mark.parametrize("stage", sorted({r[0] for r in RUNS}))
def test_stage_deps_are_exactly_the_code_it_runs(reached, stage):
    deps = code_deps(stage)
    used = reached[stage]
    assert "src/coreset/config.py" in used
    missing = sorted(f for f in used if not covered(f, deps))
    assert not missing, f"{stage}: add to its deps in dvc.yaml: {missing}"
    spurious = [d for d in deps if not any(covered(f, [d]) for f in used)]
    assert not spurious, f"{stage}: its code never uses {spurious}; remove from dvc.yaml"


def test_every_stage_of_dvc_yaml_is_probed():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert set(stages) == {r[0] for r in RUNS}


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


@pytest.mark.parametrize("path", sorted(STAGES.glob("[!_]*.py")), ids=lambda p: p.stem)
def test_no_stage_module_imports_another(path):
    others = {f"coreset.stages.{p.stem}" for p in STAGES.glob("[!_]*.py")} - {
        f"coreset.stages.{path.stem}"}
    assert not imported_modules(path) & others
