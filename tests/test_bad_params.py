"""The corpus of bad params.yaml edits: each one stops the stage before it does anything, with exit
code 2 and ONE line naming the key (and the value and what is allowed), and nothing is written.

Most cases run the stage plumbing in-process (stages/_cli.run with a main that must not be
called); a handful run `python -m coreset check` and a real stage entry point in a subprocess,
including the issue's tracebacks (a ratio that keeps no sample of a class, a missing device, a
missing or empty imagefolder).
"""

from __future__ import annotations

import copy
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from coreset.stages import _cli

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = yaml.safe_load((ROOT / "params.yaml").read_text())
DEL = object()  # the edit deletes the key
NAN, INF = math.nan, math.inf


def edited(edits: dict) -> dict:
    tree = copy.deepcopy(DEFAULT)
    for key, value in edits.items():
        node = tree
        *parents, last = key.split(".")
        for part in parents:
            node = node[part]
        if value is DEL:
            del node[last]
        else:
            node[last] = value
    return tree


# (edits, the key the one line must name); the key is the edited one unless given
CASES = [
    # the eight run-throughs
    ({"ratoi": 0.3}, "ratoi"),
    ({"recipes.el2n.windwo": "top"}, "recipes.el2n.windwo"),
    ({"recipes.cal.window": "middle"}, None),  # cal is not selected
    ({"recipes.cal.params.neighbours": 10}, None),  # unselected, unknown parameter
    ({"corrupt.label_noise.rate": NAN}, None),
    ({"train.momentum": NAN}, None),
    ({"recipes.glister.params.eta": NAN}, None),  # unselected, non-finite
    ({"recipes.el2n.params": "all"}, None),
    # top level
    ({"ratio": 0}, None), ({"ratio": 1.5}, None), ({"ratio": "high"}, None),
    ({"ratio": True}, None), ({"ratio": INF}, None),
    ({"seed": -1}, None), ({"seed": 1.5}, None), ({"seed": 2**40}, None),
    ({"selectors": []}, None), ({"selectors": ["moderate", "nope"]}, "selectors"),
    ({"selectors": ["el2n", "el2n"]}, None), ({"selectors": "el2n"}, None),
    ({"seeds": []}, None), ({"seeds": [0, -1]}, None), ({"seeds": [0, 0]}, None),
    ({"seeds": 3}, None), ({"seeds": DEL}, None),
    ({"device": "tpu"}, None), ({"device": "cuda:x"}, None), ({"device": "gpu"}, None),
    ({"device": "cuda:99"}, None), ({"device": 0}, None),
    ({"cpu_threads": -1}, None), ({"cpu_threads": 1.5}, None),
    # data
    ({"data": "digits"}, None), ({"data.dataset": "imagenet22k"}, None),
    ({"data.datset": "digits"}, None), ({"data.test_fraction": 0}, None),
    ({"data.test_fraction": 1.0}, None), ({"data.split_seed": -3}, None),
    ({"data.image_size": 4}, None), ({"data.root": ""}, None), ({"data.root": 3}, None),
    ({"data.loader": "gpu"}, None), ({"data.host_memory_gb": 0}, None),
    ({"data.host_memory_gb": INF}, None),
    # corrupt
    ({"corrupt.label_noise.rate": -0.1}, None), ({"corrupt.label_noise.rate": 1.2}, None),
    ({"corrupt.label_noise.mode": "asym"}, None), ({"corrupt.label_noise.rates": 0.2}, None),
    ({"corrupt.label_noise": 0.2}, None), ({"corrupt.images.rate": 2}, None),
    ({"corrupt.images.types": ["blur"]}, None), ({"corrupt.images.types": []}, None),
    ({"corrupt.images.types": ["fog", "fog"]}, None), ({"corrupt.images.severity": 6}, None),
    ({"corrupt.images.severity": 0}, None),
    ({"corrupt.images.rate": 0.6, "corrupt.adversarial.rate": 0.5}, "corrupt.images.rate"),
    ({"corrupt.adversarial.method": "cw"}, None), ({"corrupt.adversarial.eps": 0}, None),
    ({"corrupt.adversarial.eps": INF}, None), ({"corrupt.adversarial.alpha": -1}, None),
    ({"corrupt.adversarial.steps": 0}, None), ({"corrupt.seed": "zero"}, None),
    # training sections
    ({"train.momentum": -0.5}, None), ({"train.epochs": 0}, None), ({"train.epochs": True}, None),
    ({"train.batch_size": 0}, None), ({"train.lr": 0}, None), ({"train.lr": "1e-3"}, None),
    ({"train.lr": -0.1}, None), ({"train.weight_decay": -1}, None),
    ({"train.nesterov": "yes"}, None), ({"train.schedule": "linear"}, None),
    ({"train.milestones": [120, 60]}, None), ({"train.milestones": [0]}, None),
    ({"train.gamma": 0}, None), ({"train.step_size": 0}, None), ({"train.augment": "flip"}, None),
    ({"train.report": "last"}, None), ({"train.model": "resnet1000"}, None),
    ({"train.compile": "no"}, None), ({"train.optimizer": "adam"}, None),
    ({"train.lr": DEL}, None), ({"pretrain.seeds": []}, None), ({"pretrain.seeds": [0, 0]}, None),
    ({"pretrain.epochs": -3}, None), ({"attacker.model": "lenet9"}, None),
    ({"attacker.lr": INF}, None), ({"embed.batch_size": 0}, None),
    ({"embed.batchsize": 256}, None),
    # the training protocol (train only: pretrain and the attacker train epochs over their data)
    ({"train.budget": "iterations"}, None), ({"train.budget": DEL}, None),
    ({"train.budget": "steps"}, "train.steps"), ({"train.steps": -1}, None),
    ({"train.steps": 1.5}, None), ({"train.dynamic": "rs3"}, None),
    ({"train.dynamic": "infobatch", "train.budget": "steps", "train.steps": 100},
     "train.dynamic"),
    ({"train.dynamic_ratio": 0}, None), ({"train.dynamic_ratio": 1.5}, None),
    ({"train.infobatch_prune": 1.0}, None), ({"train.infobatch_anneal": -0.1}, None),
    ({"pretrain.budget": "steps"}, None), ({"attacker.dynamic": "rs2"}, None),
    # recipes
    ({"recipes.el2n.window": "middle"}, None), ({"recipes.el2n.method": "el3n"}, None),
    ({"recipes.el2n.balance": "yes"}, None), ({"recipes.el2n.balance": DEL}, None),
    ({"recipes.full": {"method": "random", "window": "top", "balance": True, "params": {}}},
     None),
    ({"recipes.bad name": {"method": "random", "window": "top", "balance": True, "params": {}}},
     None),
    ({"recipes": []}, None),
    ({"recipes.moderate.params.center": "foo"}, None),
    ({"recipes.herding.params.max_ratio": 7}, None),
    ({"recipes.cal.params.neighbors": -1}, None),
    ({"recipes.cal.params.neighbors": -1, "selectors": ["cal"]}, "recipes.cal.params.neighbors"),
]


def test_corpus_is_large_enough():
    assert len(CASES) >= 70


def case_id(case) -> str:
    edits = case.values[0] if hasattr(case, "values") else case[0]
    return ",".join(f"{k}={'DEL' if v is DEL else v}" for k, v in edits.items())


def assert_one_line_naming(stderr: str, key: str) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"error: params.yaml: {key} "), lines[0]
    assert "is not allowed" in lines[0] or "is missing" in lines[0], lines[0]


@pytest.mark.parametrize(("edits", "key"), CASES, ids=[case_id(c) for c in CASES])
def test_bad_edit_stops_the_stage_with_one_line(edits, key, tmp_path, monkeypatch, capsys):
    key = key or next(iter(edits))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(edited(edits)))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["download"])

    def main(p, argv):
        raise AssertionError("the stage ran past the check")

    with pytest.raises(SystemExit) as stop:
        _cli.run(main, _cli.no_args("data/raw"))
    assert stop.value.code == 2
    assert_one_line_naming(capsys.readouterr().err, key)
    assert [p.name for p in tmp_path.iterdir()] == ["params.yaml"]


# --- through subprocesses: `python -m coreset check` and a real stage --------------------------

def run(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=env, capture_output=True,
                          text=True)


def files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.mark.parametrize(("edits", "key"), [
    ({"ratoi": 0.3}, "ratoi"),
    ({"recipes.el2n.windwo": "top"}, "recipes.el2n.windwo"),
    ({"corrupt.label_noise.rate": NAN}, "corrupt.label_noise.rate"),
    ({"train.momentum": NAN}, "train.momentum"),
    ({"device": "cuda:x"}, "device"),
    ({"device": "cuda:99"}, "device"),
], ids=lambda v: str(v) if isinstance(v, str) else None)
def test_check_and_download_refuse(edits, key, tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(edited(edits)))
    for command in (("coreset", "check"), ("coreset.stages.download",)):
        proc = run(tmp_path, *command)
        assert proc.returncode == 2, proc.stderr
        assert_one_line_naming(proc.stderr, key)
    assert files(tmp_path) == {"params.yaml"}


def test_device_cuda_without_a_gpu_is_one_line(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(edited({"device": "cuda"})))
    proc = run(tmp_path, "coreset.stages.download")
    assert proc.returncode == 2
    assert_one_line_naming(proc.stderr, "device")
    assert "no CUDA device" in proc.stderr
    assert files(tmp_path) == {"params.yaml"}


def test_ratio_that_keeps_no_sample_of_a_class(tmp_path):
    """Refused by download on the fresh split before writing; once data/raw exists, by `check`
    and by any later stage (here attacker) before it writes anything."""
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(edited({"ratio": 0.0001})))
    proc = run(tmp_path, "coreset.stages.download")
    assert proc.returncode == 2
    assert_one_line_naming(proc.stderr, "ratio")
    assert "class 0 has 142 training samples" in proc.stderr  # digits: 178 * 0.8, rounded down
    assert files(tmp_path) == {"params.yaml"}

    (tmp_path / "params.yaml").write_text(yaml.safe_dump(DEFAULT))
    assert run(tmp_path, "coreset.stages.download").returncode == 0
    before = files(tmp_path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(edited({"ratio": 0.0001})))
    for command in (("coreset", "check"), ("coreset.stages.attacker",)):
        proc = run(tmp_path, *command)
        assert proc.returncode == 2
        assert_one_line_naming(proc.stderr, "ratio")
    assert files(tmp_path) == before


@pytest.mark.parametrize("layout", ["missing", "empty train", "no class folders"])
def test_imagefolder_problems_are_one_line(tmp_path, layout):
    root = tmp_path / "images"
    if layout != "missing":
        (root / "train").mkdir(parents=True)
        (root / "test" / "a").mkdir(parents=True)
    if layout == "no class folders":
        (root / "train" / "x.png").write_bytes(b"")
    params = edited({"data.dataset": "imagefolder", "data.root": str(root)})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    before = files(tmp_path)
    proc = run(tmp_path, "coreset.stages.download")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "data.root" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert files(tmp_path) == before
