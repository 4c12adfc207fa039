"""The package's layers, read from the imports of its modules (ast, nothing is run).

    shared vocabulary (io, registry, rules, safe_yaml, params)  <  data, models, artifacts
    <  training  <  scores  <  config  <  stages, experiments  <  cli, check

A module imports only from its own layer or below; the only circle is the registration one (a
registry discovers the modules that register into it). ``params`` (the typed shape of
params.yaml) is at the bottom, so the wings take the types they read from it; ``config``, which
validates the file against the allowlists of the wings, sits above them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "src" / "coreset"
LAYER = {"io": 0, "registry": 0, "rules": 0, "safe_yaml": 0, "params": 0, "artifacts": 1,
         "data": 1, "models": 1, "training": 2, "scores": 3, "config": 4,
         "stages": 5, "experiments": 5, "cli": 6, "check": 6, "__main__": 6, "__init__": 0}


def _part(module: str) -> str:
    return module.split(".")[1] if module.count(".") else "__init__"


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "coreset":
            names.update(f"coreset.{a.name}" for a in node.names)  # from coreset import io
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("coreset"):
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.startswith("coreset"))
    return {n for n in names if n != "coreset"}


MODULES = sorted(PKG.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PKG)))
def test_no_import_runs_against_the_layers(path):
    rel = path.relative_to(PKG).with_suffix("")
    here = rel.parts[0]
    for module in _imports(path):
        there = _part(module)
        assert here in LAYER and there in LAYER, f"{rel}: give {here!r} / {there!r} a layer"
        assert LAYER[there] <= LAYER[here] or (here, there) == ("models", "data"), (
            f"{rel} (layer {LAYER[here]}) imports {module} (layer {LAYER[there]})")


def test_the_params_types_import_nothing_from_the_package():
    """The wings take their types from params.py: it must stay the bottom of every import."""
    assert _imports(PKG / "params.py") == set()


def test_the_import_reader_sees_every_form(tmp_path):
    (probe := tmp_path / "probe.py").write_text(
        "import coreset.io\nfrom coreset import artifacts, rules as r\n"
        "from coreset.data.names import ATTACKS\ndef f():\n    from coreset import scores\n")
    assert _imports(probe) == {"coreset.io", "coreset.artifacts", "coreset.rules",
                               "coreset.data.names", "coreset.scores"}


def test_training_imports_nothing_from_scores():
    for path in (PKG / "training").glob("*.py"):
        assert not any(m.startswith("coreset.scores") for m in _imports(path)), path.name


def test_stages_and_experiments_do_not_import_each_other():
    for wing, other in (("stages", "experiments"), ("experiments", "stages")):
        for path in (PKG / wing).rglob("*.py"):
            bad = [m for m in _imports(path) if m.startswith(f"coreset.{other}")]
            assert not bad, f"{path.relative_to(PKG)} imports {bad}"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_no_import_circle():
    """Every import, lazy ones included, as a graph over the package's modules: it has no
    cycle (the selector registry's discovery imports by path, not by an import statement)."""
    known = {_module_name(p): p for p in MODULES}

    def resolve(name: str) -> str | None:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    graph = {m: {r for n in _imports(p) if (r := resolve(n)) and r != m and r != "coreset"}
             for m, p in known.items()}
    state: dict[str, int] = {}

    def visit(m: str, trail: list[str]) -> None:
        state[m] = 1
        for n in sorted(graph[m]):
            assert state.get(n) != 1, "import circle: " + " -> ".join([*trail, m, n])
            if n not in state:
                visit(n, [*trail, m])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [])
