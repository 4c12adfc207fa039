"""The package's layers, read from the imports of its modules (ast, nothing is run).

    shared vocabulary (io, registry, rules, safe_yaml, config)  <  data, models, artifacts
    <  training  <  scores  <  stages, experiments  <  cli, check

A module imports only from its own layer or below; the only circle is the registration one (a
registry discovers the modules that register into it). ``config`` validates the whole file, so it
reads the allowlists of the wings (names and rules only, never their code paths): those imports
are listed here one by one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "src" / "coreset"
LAYER = {"io": 0, "registry": 0, "rules": 0, "safe_yaml": 0, "config": 0, "artifacts": 1,
         "data": 1, "models": 1,
         "training": 2, "scores": 3, "stages": 4, "experiments": 4, "cli": 5, "check": 5,
         "__main__": 5, "__init__": 0}
# config.py reads allowlists and rules of the wings to validate params.yaml in one pass
# (exactly these: test_the_validation_exceptions_are_exactly_what_config_imports)
VALIDATION = {"coreset.artifacts", "coreset.data.datasets", "coreset.data.label_noise",
              "coreset.data.names", "coreset.models", "coreset.scores.registry",
              "coreset.scores.selection", "coreset.scores.samplers", "coreset.training.dynamic",
              "coreset.training.options"}


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
        if str(rel) == "config" and module in VALIDATION:
            continue
        there = _part(module)
        assert here in LAYER and there in LAYER, f"{rel}: give {here!r} / {there!r} a layer"
        assert LAYER[there] <= LAYER[here] or (here, there) == ("models", "data"), (
            f"{rel} (layer {LAYER[here]}) imports {module} (layer {LAYER[there]})")


def test_the_validation_exceptions_are_exactly_what_config_imports():
    """A stale entry would excuse a future arrow against the layers that nobody reviewed."""
    above = {m for m in _imports(PKG / "config.py") if LAYER[_part(m)] > LAYER["config"]}
    assert above == VALIDATION, (f"config.py imports {sorted(above - VALIDATION)} not listed in "
                                 f"VALIDATION; listed but not imported: "
                                 f"{sorted(VALIDATION - above)}")


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
