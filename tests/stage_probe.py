"""Run one stage module as ``python -m`` does and write, as JSON, the project modules its own code
reaches (used by tests/test_stage_deps.py).

    python tests/stage_probe.py OUT.json coreset.stages.NAME [ARGS...]

Every ``import`` statement the process executes is recorded as an edge importer -> imported
module, except imports executed inside functions while params.yaml is being validated (the
selector registry loads every selector module then, for their parameter declarations). Imports at
module level are always recorded: they are a module's static dependencies. The stage's code is
the closure of these edges from the stage module, not followed out of ``coreset.config``: what
config.py imports only validates (allowlists, parameter declarations, the ratio check) and cannot
change a stage's output, so it is not a dependency of every stage, while config.py itself is.
A selector that the stage looks up in the registry counts as reached, with its module's imports.
"""

from __future__ import annotations

import builtins
import importlib.util
import json
import runpy
import sys

VALIDATION_ONLY = "coreset.config"


def _targets(base: str, fromlist) -> list[str]:
    """The modules an import statement uses: ``from pkg import mod`` uses mod, not pkg's own
    code (pkg/__init__.py), unless it also takes a name defined there."""
    subs = [f"{base}.{item}" for item in fromlist or () if f"{base}.{item}" in sys.modules]
    takes_names = not fromlist or len(subs) < len([i for i in fromlist if i != "*"])
    return subs + ([base] if takes_names and base in sys.modules else [])


def main() -> None:
    out, module, *args = sys.argv[1:]
    edges: dict[str, set[str]] = {}
    validating = [False]
    real_import = builtins.__import__

    def recording_get(real_get):
        def get(name):
            spec = real_get(name)
            if not validating[0]:
                edges.setdefault("__main__", set()).add(spec.fn.__module__)
            return spec
        return get

    def recording_import(name, globals=None, locals=None, fromlist=(), level=0):
        result = real_import(name, globals, locals, fromlist, level)
        # A stage reaches a selector's module through the registry, not through an import: a
        # selector the stage looks up (outside validation) is code the stage runs, with what its
        # module imports, at module level or inside the selector (aum_threshold trains there).
        # Patched as soon as the registry is loaded, before any `from ... import get` binds it.
        registry = sys.modules.get("coreset.scores.registry")
        real_get = getattr(registry, "get", None)  # None while the module is being loaded
        if real_get is not None and not hasattr(real_get, "probed"):
            registry.get = recording_get(registry.get)
            registry.get.probed = True
        importer = (globals or {}).get("__name__", "")
        at_module_level = sys._getframe(1).f_code.co_name == "<module>"
        if at_module_level or not validating[0]:
            package = (globals or {}).get("__package__") or ""
            base = importlib.util.resolve_name("." * level + name, package) if level else name
            edges.setdefault(importer, set()).update(_targets(base, fromlist))
        return result

    builtins.__import__ = recording_import
    from coreset.stages import _cli

    real_validate = _cli.validate

    def marked_validate(*a, **kw):
        validating[0] = True
        try:
            return real_validate(*a, **kw)
        finally:
            validating[0] = False

    _cli.validate = marked_validate
    sys.argv = [module, *args]
    code = 0
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as err:
        code = err.code or 0
    reached, todo = {"__main__"}, ["__main__"]
    while todo:
        node = todo.pop()
        if node == VALIDATION_ONLY:
            continue
        for target in edges.get(node, ()):
            if target not in reached:
                reached.add(target)
                todo.append(target)
    stage_file = importlib.util.find_spec(module).origin
    files = {getattr(sys.modules.get(m), "__file__", None) for m in reached - {"__main__"}}
    with open(out, "w") as f:
        json.dump({"exit": code, "stage": stage_file, "files": sorted(x for x in files if x)}, f)
    sys.exit(code)


if __name__ == "__main__":
    main()
