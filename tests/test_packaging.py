"""The package declares what its code imports: pyproject.toml's dependencies (loose bounds) and
requirements.txt's exact pins; the `coreset` command and `python -m coreset` dispatch."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from coreset import cli

ROOT = Path(__file__).resolve().parents[1]
# import name -> distribution name, where they differ
DIST = {"sklearn": "scikit-learn", "yaml": "pyyaml", "PIL": "pillow"}
# pinned for the tests and the lint, never imported by src/
TOOLS = {"pytest", "pytest-xdist", "hypothesis", "ruff"}


def imported_top_level(src: Path) -> set[str]:
    """Third-party top-level modules imported anywhere under ``src`` (absolute imports only)."""
    found = set()
    for file in src.rglob("*.py"):
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return {m for m in found if m not in sys.stdlib_module_names and m != "coreset"}


def name_of(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].lower()


def declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {name_of(r) for r in project["dependencies"]}


def pinned() -> dict[str, str]:
    lines = [x.strip() for x in (ROOT / "requirements.txt").read_text().splitlines()]
    return {name_of(x): x for x in lines if x and not x.startswith(("#", "-e"))}


def test_pyproject_declares_exactly_what_the_code_imports():
    needed = {DIST.get(m, m).lower() for m in imported_top_level(ROOT / "src")}
    assert needed == declared()


def test_requirements_pin_every_dependency_exactly_and_nothing_unused():
    pins = pinned()
    assert set(pins) == declared() | TOOLS  # e.g. no dvclive: nothing imports it
    assert all(re.fullmatch(r"[A-Za-z0-9_.\-]+==[0-9][0-9A-Za-z.+\-]*", p) for p in pins.values())


def test_console_script_points_at_the_dispatcher():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"] == {"coreset": "coreset.cli:main"}


def test_help_lists_every_subcommand(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ("check", "table", "report", "export", "verify", "kept"):
        assert re.search(rf"^  {name} +\S", out, re.MULTILINE), name


def test_subcommands_get_their_argv_unchanged(monkeypatch):
    seen = {}

    class Fake:
        @staticmethod
        def main(argv):
            seen["argv"] = argv
            return 3

    monkeypatch.setattr(cli.importlib, "import_module", lambda name: seen.update(mod=name) or Fake)
    argv = ["robustness", "--shard", "0/2", "--gpus", "0,1", "-S", "a=b"]
    assert cli.main(["table", *argv]) == 3
    assert seen == {"mod": "coreset.experiments.tables", "argv": argv}


def test_unknown_subcommand_is_one_line_and_exit_2(capsys):
    assert cli.main(["frobnicate"]) == 2
    assert capsys.readouterr().err == ("error: unknown command 'frobnicate'; known: check, table, "
                                       "report, export, verify, kept, show\n")


def test_python_dash_m_coreset_runs_the_dispatcher():
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run([sys.executable, "-m", "coreset", "--help"], capture_output=True,
                          text=True, env=env, cwd=ROOT)
    assert proc.returncode == 0 and "export" in proc.stdout


@pytest.mark.integration
def test_pip_install_in_a_clean_venv_brings_what_the_code_imports(tmp_path):
    """A clean venv (no system site packages) that sees only torch and torchvision of this
    environment (to avoid a multi-GB download) through a .pth file; `pip install .` must bring
    everything else, and then every module of the package imports."""
    from importlib.metadata import packages_distributions

    import torch

    shared = tmp_path / "shared"
    shared.mkdir()
    site = Path(torch.__file__).parents[1]
    wanted = {"torch", "torchvision"}  # their modules (torchgen, functorch, ...) and dist-infos
    names = {m for m, dists in packages_distributions().items() if wanted & set(dists)}
    for entry in site.iterdir():
        if entry.name in names or entry.name.startswith(("torch-", "torchvision-")):
            (shared / entry.name).symlink_to(entry)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    site = subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "shared_torch.pth").write_text(f"{shared}\n")
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # only the installed copy
    copy = tmp_path / "pkg"  # a copy: building must not write into the repository
    shutil.copytree(ROOT / "src", copy / "src", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, copy / name)
    # --no-compile: byte-compiling ~100 dependencies is a third of the install and tests nothing
    # here (the imports below compile what they load)
    subprocess.run([py, "-m", "pip", "install", "-q", "--no-compile", str(copy)], check=True,
                   env=clean)
    modules = sorted({".".join(p.relative_to(ROOT / "src").with_suffix("").parts)
                      for p in (ROOT / "src" / "coreset").rglob("*.py")
                      if p.name != "__main__.py"})
    code = (f"import importlib\nfor m in {modules!r}:\n    importlib.import_module(m)\n"
            "import coreset\nprint(coreset.__file__)")
    proc = subprocess.run([py, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                          env=clean)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().startswith(str(venv))  # the installed copy, not src/
    assert subprocess.run([venv / "bin" / "coreset", "--help"], capture_output=True,
                          text=True, env=clean).returncode == 0
