"""params.yaml -> the validated, typed :class:`coreset.params.Params` (attribute names mirror the
file one to one: ``corrupt.adversarial.rate`` is ``p.corrupt.adversarial.rate``).

Every stage validates the WHOLE file before it does anything (stages/_cli.py), so a bad value
fails at whichever stage DVC runs first, in seconds, with one line naming the key, the value and
what is allowed (ConfigError). What is checked:

- the file itself (``parse``): every key at every level is known and present, every value has its
  type and range, no number is NaN or infinite, every recipe under ``recipes:`` (selected or not)
  names a registered method, a window, a balance and parameters that the method declares
  (``registry.validate_params``), and ``selectors`` names recipes;
- the machine and the data (``check_runtime``): the requested device exists, and the ratio keeps
  at least one sample of every class once the class counts are known (data/raw, written by the
  download stage, which checks the freshly loaded split itself before writing it), and every
  model accepts the dataset's image size.

The allowlists come from the modules that implement each concept (datasets, models, corruptions,
attacks, label-noise modes, training options, selector windows), all importable without torch.
That is why this module sits above the wings (tests/test_layers.py) while the dataclasses it
builds sit at the bottom (coreset/params.py): the wings read the types, never the validator.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

import numpy as np

from coreset import artifacts, safe_yaml
from coreset.data.datasets import NAMES as DATASETS
from coreset.data.label_noise import MODES as NOISE_MODES
from coreset.data.names import ATTACKS, CORRUPTIONS, LOADERS
from coreset.models import AUTO as AUTO_MODEL
from coreset.models import MODELS, min_size
from coreset.params import (
    Adversarial,
    CoresetTrainParams,
    Corrupt,
    Data,
    Embed,
    Images,
    LabelNoise,
    Params,
    PretrainParams,
    Recipe,
    TrainParams,
)
from coreset.rules import Bool, Choice, Float, Int, Items, RuleError, Text
from coreset.scores.registry import WINDOWS, ParamError, load_all, validate_params
from coreset.scores.samplers import window_params
from coreset.scores.selection import class_budgets
from coreset.training.dynamic import BUDGETS, DYNAMIC
from coreset.training.options import AUGMENTS, REPORTS, SCHEDULES

SEED_MAX = 2**32 - 1  # numpy's legacy seeding and scikit-learn's random_state stop here
RESERVED_RECIPES = ("full",)  # train@full-<seed> is the full-data reference row


class ConfigError(ValueError):
    """A value in params.yaml is not allowed (one line: key, value, what is allowed)."""


def _fail(key: str, value: object, allowed: str) -> ConfigError:
    return ConfigError(f"params.yaml: {key} = {value!r} is not allowed: {allowed}")


# --- the vocabulary: coreset.rules (shared with the selector parameters) -------------------------
# Every number has an upper bound: a value past it would allocate absurd memory (the per-epoch
# dynamics are seeds x epochs x N) or run for weeks; the bounds are far above every paper's value.
MAX_EPOCHS = 1000  # DeepCore and Moderate train 200 epochs
MAX_STEPS = 10_000_000  # CCS: 40 000 steps
MAX_BATCH = 65_536
MAX_IMAGE_SIZE = 1024  # image trees are resized to image_size x image_size
MAX_THREADS = 1024
MAX_ATTACK_STEPS = 1000  # PGD: 10 steps
MAX_SEEDS = 100  # training seeds of a table, pretraining seeds of the score models


def _section(cls: type) -> Any:
    return lambda key, v: build(cls, v, key)


SEED = Int(0, SEED_MAX)
SEEDS = Items(SEED, f"seeds (integers in 0..{SEED_MAX}, at most {MAX_SEEDS})",
              max_items=MAX_SEEDS)
RATE = Float(0.0, 1.0)
CORRUPTION_TYPES = Items(Choice(tuple(CORRUPTIONS)), f"corruptions ({', '.join(CORRUPTIONS)})")
MILESTONES = Items(Int(1, MAX_EPOCHS), f"epoch numbers in 1..{MAX_EPOCHS}", nonempty=False,
                   increasing=True)
RECIPE_NAMES = Items(Text("a recipe name"), "recipe names")
BOOL = Bool()
PATH = Text()
BATCH = Int(1, MAX_BATCH)


def _recipes(key: str, section: Any) -> dict[str, Recipe]:
    if not isinstance(section, dict) or not section:
        raise _fail(key, section, "a mapping of recipe name -> {method, window, balance, params}")
    return {name: _recipe(f"{key}.{name}", name, node) for name, node in section.items()}


def _recipe(key: str, name: Any, node: Any) -> Recipe:
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", name) \
            or name in RESERVED_RECIPES:
        raise _fail(key, name, "a recipe name of letters, digits, _ and - (not 'full')")
    required = ("method", "window", "balance", "params")
    allowed = (*required, "window_params")
    if not isinstance(node, dict):
        raise _fail(key, node, "a mapping with keys " + ", ".join(required)
                    + " (and window_params for the windows strata and beta)")
    _known_keys(key, node, allowed)
    for part in required:
        if part not in node:
            raise ConfigError(f"params.yaml: {key}.{part} is missing")
    method = Choice(tuple(sorted(load_all())))(f"{key}.method", node["method"])
    params = node["params"]
    if not isinstance(params, dict):
        raise _fail(f"{key}.params", params, "a mapping of the method's parameters ({} for none)")
    try:
        full = validate_params(method, params)
    except ParamError as err:
        raise _fail(f"{key}.params.{err.param}", err.value, err.allowed) from None
    window = Choice(WINDOWS)(f"{key}.window", node["window"])
    try:
        sampler = window_params(f"{key}.window_params", window, node.get("window_params"))
    except RuleError as err:
        raise ConfigError(f"params.yaml: {err}") from None
    return Recipe(name=name, method=method, window=window,
                  balance=BOOL(f"{key}.balance", node["balance"]), params=full,
                  window_params=sampler)


def _device(key: str, v: Any) -> str:
    if not isinstance(v, str) or not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", v):
        raise _fail(key, v, "auto, cpu, cuda, cuda:N (N = 0, 1, ...) or mps")
    return v


# --- the schema: one rule per field of coreset.params' dataclasses -------------------------------
# A subclass's rules are its base's plus its own (PretrainParams = TrainParams + seeds);
# tests/test_config.py checks both ways that every field has exactly one rule.
RULES: dict[type, dict[str, Any]] = {
    Data: {
        "dataset": Choice(DATASETS),
        "root": PATH,
        # digits' stratified split needs every class on both sides of it
        "test_fraction": Float(0.01, 0.9),
        "split_seed": SEED,
        "image_size": Int(8, MAX_IMAGE_SIZE),
        "loader": Choice(LOADERS),
        "host_memory_gb": Float(0.0, 1e6, open_low=True),
    },
    LabelNoise: {"rate": RATE, "mode": Choice(NOISE_MODES)},
    Images: {"rate": RATE, "types": CORRUPTION_TYPES, "severity": Int(1, 5)},
    Adversarial: {
        "rate": RATE,
        "method": Choice(ATTACKS),
        "eps": Float(0.0, 1.0, open_low=True),
        "alpha": Float(0.0, 1.0, open_low=True),
        "steps": Int(1, MAX_ATTACK_STEPS),
    },
    Corrupt: {"seed": SEED, "label_noise": _section(LabelNoise), "images": _section(Images),
              "adversarial": _section(Adversarial)},
    TrainParams: {
        "model": Choice((AUTO_MODEL, *MODELS)),
        "epochs": Int(1, MAX_EPOCHS),
        "batch_size": BATCH,
        "lr": Float(0.0, 10.0, open_low=True),
        "momentum": Float(0.0, 1.0, open_high=True),
        "weight_decay": Float(0.0, 1.0),
        "nesterov": BOOL,
        "schedule": Choice(SCHEDULES),
        "milestones": MILESTONES,
        "gamma": Float(0.0, 1.0, open_low=True),
        "step_size": Int(1, MAX_EPOCHS),
        "augment": Choice(AUGMENTS),
        "report": Choice(REPORTS),
        "compile": BOOL,
    },
    PretrainParams: {"seeds": SEEDS},
    CoresetTrainParams: {
        "budget": Choice(BUDGETS),
        "steps": Int(0, MAX_STEPS),  # >= 1 when budget is steps (see parse)
        "dynamic": Choice(DYNAMIC),
        "dynamic_ratio": Float(0.0, 1.0, open_low=True),
        "infobatch_prune": Float(0.0, 1.0, open_high=True),
        "infobatch_anneal": Float(0.0, 1.0),
    },
    Embed: {"batch_size": BATCH},
    Params: {
        "seed": SEED,
        "ratio": Float(0.0, 1.0, open_low=True),
        "selectors": RECIPE_NAMES,  # defined? see parse
        "seeds": SEEDS,
        "device": _device,
        "cpu_threads": Int(0, MAX_THREADS),
        "data": _section(Data),
        "corrupt": _section(Corrupt),
        "pretrain": _section(PretrainParams),
        "attacker": _section(TrainParams),
        "embed": _section(Embed),
        "train": _section(CoresetTrainParams),
        "recipes": _recipes,
    },
}


def rules(cls: type) -> dict[str, Any]:
    """The rule of every field of ``cls``: its own and its bases' entries in RULES."""
    out: dict[str, Any] = {}
    for base in reversed(cls.__mro__):
        out |= RULES.get(base, {})
    return out


# --- the generic walk: sections, unknown keys, non-finite numbers --------------------------------

def _known_keys(key: str, node: dict, allowed: tuple[str, ...] | list[str]) -> None:
    for name in node:
        if name not in allowed:
            near = difflib.get_close_matches(str(name), allowed, n=1)
            hint = f" (did you mean {near[0]}?)" if near else ""
            where = f"{key}." if key else ""
            raise _fail(f"{where}{name}", node[name],
                        f"not a key of params.yaml{hint}; allowed here: {', '.join(allowed)}")


def _finite(key: str, node: Any) -> None:
    """NaN or infinity anywhere (selector parameters included) is refused: a NaN rate compares
    false with everything and would silently mean 'no noise'."""
    if isinstance(node, float) and not math.isfinite(node):
        raise _fail(key, node, "a finite number")
    if isinstance(node, dict):
        for k, v in node.items():
            _finite(f"{key}.{k}" if key else str(k), v)
    elif isinstance(node, list):
        for v in node:
            _finite(key, v)


def build(cls: type, node: Any, key: str = "") -> Any:
    """The dataclass ``cls`` from the mapping ``node`` (the part of params.yaml at ``key``)."""
    if not isinstance(node, dict):
        what = key if key else "the file"
        raise _fail(what, node, f"a mapping with keys {', '.join(f.name for f in fields(cls))}")
    _known_keys(key, node, [f.name for f in fields(cls)])
    values = {}
    checks = rules(cls)
    for f in fields(cls):
        sub = f"{key}.{f.name}" if key else f.name
        if f.name not in node:
            if f.default is not MISSING:
                raise ConfigError(f"params.yaml: {sub} is missing (default: {f.default!r})")
            raise ConfigError(f"params.yaml: {sub} is missing")
        try:
            values[f.name] = checks[f.name](sub, node[f.name])
        except RuleError as err:
            raise ConfigError(f"params.yaml: {err}") from None
    return cls(**values)


def parse(tree: Any) -> Params:
    """Validate a params tree (the parsed params.yaml): everything that does not depend on the
    machine or the data. Raises ConfigError (one line)."""
    if not isinstance(tree, dict):
        raise ConfigError("params.yaml: the file must be a mapping of keys to values")
    _finite("", tree)
    p = build(Params, tree)
    c = p.corrupt
    if c.images.rate + c.adversarial.rate > 1:
        raise _fail("corrupt.images.rate", c.images.rate,
                    f"at most 1 - corrupt.adversarial.rate = {1 - c.adversarial.rate:g} "
                    "(corrupted and adversarial images are disjoint)")
    _check_protocol(p.train)
    for key in ("attacker", "pretrain", "train"):
        _check_schedule(key, getattr(p, key))
    for name in p.selectors:
        if name not in p.recipes:
            raise _fail("selectors", name,
                        f"a recipe defined under `recipes:` ({', '.join(p.recipes)})")
    for recipe in p.recipes.values():
        _check_recipe_alone(recipe)
    for name in p.selectors:
        _check_selected(p, p.recipes[name])
    return p


def _check_schedule(key: str, t: TrainParams) -> None:
    """A decay point past the last epoch is never reached: the lr would never decay."""
    if t.schedule == "multistep" and t.milestones and t.milestones[-1] > t.epochs:
        raise _fail(f"{key}.milestones", list(t.milestones),
                    f"epochs <= {key}.epochs = {t.epochs} with schedule multistep (a later "
                    "milestone is never reached: the lr would never decay there)")
    if t.schedule == "step" and t.step_size > t.epochs:
        raise _fail(f"{key}.step_size", t.step_size,
                    f"at most {key}.epochs = {t.epochs} with schedule step (the lr would never "
                    "decay)")


def _check_recipe_alone(r: Recipe) -> None:
    """Rules between the parameters of one recipe (selected or not)."""
    q = r.params
    if r.method in ("tdds", "dual") and q["window"] > q["trajectory"]:
        raise _fail(f"recipes.{r.name}.params.window", q["window"],
                    f"at most recipes.{r.name}.params.trajectory = {q['trajectory']}")


def _check_selected(p: Params, r: Recipe) -> None:
    """Rules between a selected recipe and the rest of the file: what its score can serve at
    this ratio, and what the pretraining records for it."""
    key, q = f"recipes.{r.name}.params", r.params
    if "max_ratio" in q and q["max_ratio"] < p.ratio:
        raise _fail(f"{key}.max_ratio", q["max_ratio"],
                    f"at least ratio = {p.ratio:g} (the greedy order stops at max_ratio of each "
                    "class: it cannot serve a larger ratio)")
    if r.method in ("ccs", "d2") and p.ratio > 1 - q["hard_cut"] + 1e-12:
        raise _fail(f"{key}.hard_cut", q["hard_cut"],
                    f"at most 1 - ratio = {1 - p.ratio:g} (the cut samples are never ranked: "
                    f"ratio {p.ratio:g} needs {p.ratio:.0%} of the data ranked)")
    w = r.window_params
    if r.window == "strata" and p.ratio > 1 - w["hard_cut"] + 1e-12:
        raise _fail(f"recipes.{r.name}.window_params.hard_cut", w["hard_cut"],
                    f"at most 1 - ratio = {1 - p.ratio:g} (the window strata keeps only what its "
                    "hard cut leaves)")
    epochs = p.pretrain.epochs
    needs = [(f"{key}.{name}", q[name]) for name in
             (("window",) if r.method == "dyn_unc" else
              ("trajectory",) if r.method in ("tdds", "dual") else ())]
    if r.window == "beta":
        needs.append((f"recipes.{r.name}.window_params.trajectory", w["trajectory"]))
    for where, value in needs:
        if value > epochs:
            raise _fail(where, value, f"at most pretrain.epochs = {epochs} (the per-epoch "
                        f"dynamics of pretraining hold {epochs} epochs)")


def _check_protocol(t: CoresetTrainParams) -> None:
    """The train keys that depend on each other."""
    if t.budget == "steps" and t.steps < 1:
        raise _fail("train.steps", t.steps, "an integer >= 1 when train.budget is steps")
    if t.budget == "steps" and t.dynamic == "infobatch":
        # InfoBatch's pruning and annealing phases are counted in epochs of a known number
        raise _fail("train.dynamic", t.dynamic,
                    "none or rs2 when train.budget is steps (InfoBatch anneals over epochs)")


def load(path: str | Path = "params.yaml") -> Params:
    """Read and ``parse`` a params file."""
    if not Path(path).exists():
        raise ConfigError(f"{path}: no such file (run from the repository root)")
    try:
        tree = safe_yaml.load(path)
    except safe_yaml.YamlError as err:
        raise ConfigError(str(err)) from None
    return parse(tree)


# --- checks that need the machine or the data ----------------------------------------------------

def check_device(device: str) -> None:
    """The requested device exists. ``auto`` and ``cpu`` need no torch (numpy-only stages stay
    torch-free); ``cuda``, ``cuda:N`` and ``mps`` ask torch."""
    if device in ("auto", "cpu"):
        return
    import torch

    if device == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise _fail("device", device, "this machine has no MPS device; use auto or cpu")
        return
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    index = int(device.partition(":")[2] or 0)
    if index >= count:
        have = (f"this machine has {count} CUDA device(s) (cuda:0..cuda:{count - 1})" if count
                else "this machine has no CUDA device")
        raise _fail("device", device, f"{have}; use auto, cpu" + (", cuda" if count else ""))


def check_ratio(ratio: float, counts: np.ndarray, source: str) -> None:
    """Every class keeps at least one sample: the per-class budgets of ``selection`` (which a
    balanced recipe takes exactly, and which a global one matches in total) are all >= 1.
    ``counts`` are the training samples per class, read from ``source``."""
    counts = np.asarray(counts, dtype=np.int64)
    if len(counts) < 2 or counts.min() < 1:
        raise ConfigError(f"{source}: class counts {counts.tolist()} are not allowed: a training "
                          "split needs at least 2 classes, each with a sample (data.root?)")
    kept = class_budgets(counts, ratio)
    if kept.min() < 1:
        c = int(np.argmin(kept))
        raise _fail("ratio", ratio, f"a ratio that keeps a sample of every class: class {c} has "
                    f"{counts[c]} training samples in {source} and keeps none; use a ratio >= "
                    f"1/{counts.min()} = {1 / counts.min():.4g}")


def check_model_sizes(p: Params, image_size: int, source: str) -> None:
    """Every model named in params.yaml accepts the dataset's ``image_size`` (read from
    ``source``): LeNet, VGG-11 and Inception v3 need more than digits' 8 px."""
    for key in ("attacker", "pretrain", "train"):
        name = getattr(p, key).model
        if name != AUTO_MODEL and image_size < min_size(name):
            raise _fail(f"{key}.model", name,
                        f"a model for {image_size} px images ({source}): {name} needs at least "
                        f"{min_size(name)} px")


def check_runtime(p: Params, data_counts: tuple[np.ndarray, str] | None = None) -> None:
    """The machine-dependent and data-dependent checks (see the module docstring)."""
    check_device(p.device)
    if data_counts is not None:
        check_ratio(p.ratio, *data_counts)
        check_model_sizes(p, artifacts.meta().image_size, str(artifacts.RAW / "meta.json"))
        check_sizes(p, int(np.sum(data_counts[0])), data_counts[1], len(data_counts[0]))


# What a stage's process holds besides what data.host_memory_gb budgets (the images it keeps
# resident, pretrain's dynamics): the interpreter with torch and numpy imported (~0.9 GiB of
# RSS), the model, one batch's activations and the allocator's slack. Every stage's peak RSS
# stays within host_memory_gb + this (benchmarks/scale.py measures it,
# tests/test_scale_pipeline.py checks corrupt, pretrain and embed).
HOST_OVERHEAD_GIB = 1.25

# bytes per epoch and sample of pretraining's dynamics: correct (bool) + loss, margin,
# assigned-label probability, probability margin and TDDS's probability change (float32)
DYNAMICS_BYTES = 1 + 6 * 4  # correct; loss, margin, prob, prob_margin, prob_change, eval_prob
LOGIT_BYTES = 4  # the previous-epoch logits TDDS's change reads: N x C float32


def dynamics_bytes(n: int, classes: int, epochs: int, seeds: int) -> int:
    """The most memory pretraining's dynamics take (training.loop._Dynamics, stages/pretrain):
    N x C x 4 bytes of previous-epoch logits, plus (seeds + 1) x epochs x N x 25 bytes (the
    arrays of the run being trained and those of the runs kept for data/dynamics.npz).
    ImageNet-1k (N = 1,281,167, C = 1,000), one seed, 10 epochs: 5.12 GB + 0.64 GB."""
    return n * classes * LOGIT_BYTES + (seeds + 1) * epochs * n * DYNAMICS_BYTES


def _gib_up(size: int) -> str:
    """``size`` bytes in GiB rounded UP to 2 decimals: the printed value itself is accepted."""
    return f"{math.ceil(size / 2**30 * 100) / 100:.2f}"


def check_sizes(p: Params, n: int, source: str, classes: int = 0) -> None:
    """What needs the number of training samples ``n`` and classes (read from ``source``):
    clusters of a selected recipe; embed's per-model outputs and the per-epoch dynamics that
    pretraining keeps in memory (:func:`dynamics_bytes`), each of which must fit
    ``data.host_memory_gb``."""
    for name in p.selectors:
        r = p.recipes[name]
        if r.params.get("n_clusters", 0) > n:
            raise _fail(f"recipes.{name}.params.n_clusters", r.params["n_clusters"],
                        f"at most the {n} training samples ({source}); 0 = automatic")
    seeds, epochs = len(p.pretrain.seeds), p.pretrain.epochs
    need = dynamics_bytes(n, classes, epochs, seeds)
    if need > p.data.host_memory_gb * 2**30:
        raise _fail("data.host_memory_gb", p.data.host_memory_gb,
                    f"at least {_gib_up(need)} for pretraining's dynamics of {n} samples and "
                    f"{classes} classes ({source}): {n} x {classes} x {LOGIT_BYTES} bytes of "
                    f"previous-epoch logits + ({seeds} pretrain.seeds + 1) x {epochs} "
                    f"pretrain.epochs x {n} x {DYNAMICS_BYTES} bytes; or lower pretrain.epochs "
                    "or pretrain.seeds")
    outputs = seeds * n * (classes + 2) * 4  # embed: softmax, loss, gradient norm per model
    if outputs > p.data.host_memory_gb * 2**30:
        raise _fail("data.host_memory_gb", p.data.host_memory_gb,
                    f"at least {_gib_up(outputs)} for embed's outputs of {n} samples and "
                    f"{classes} classes ({source}): {seeds} pretrain.seeds x {n} x ({classes} + 2)"
                    " x 4 bytes (softmax, loss, gradient norm per model), besides the features; "
                    "or fewer pretrain.seeds")
