"""params.yaml -> validated, typed config. A bad value raises ConfigError with one line naming the
key, the value and what is allowed; stage entry points turn it into a non-zero exit before they
write anything."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from coreset.data.datasets import NAMES as DATASETS
from coreset.scores.registry import WINDOWS

SCHEDULES = ("cosine", "multistep", "step", "constant")
AUGMENTS = ("none", "crop_flip", "crop", "auto")
MODELS = ("auto", "mnist_cnn", "small_cnn", "resnet18", "resnet50", "vgg16")
CORRUPTIONS = ("gaussian_noise", "occlusion", "resolution", "fog", "motion_blur")


class ConfigError(ValueError):
    """A value in params.yaml is not allowed."""


@dataclass(frozen=True)
class TrainParams:
    model: str
    epochs: int
    batch_size: int
    lr: float
    momentum: float
    weight_decay: float
    nesterov: bool
    schedule: str
    milestones: tuple[int, ...]
    gamma: float
    step_size: int
    augment: str
    report: str
    compile: bool = False  # torch.compile the training forward pass (opt-in)


@dataclass(frozen=True)
class Recipe:
    name: str
    method: str
    window: str
    balance: bool
    params: dict[str, Any]


@dataclass(frozen=True)
class CorruptParams:
    seed: int
    label_rate: float
    label_mode: str
    image_rate: float
    image_types: tuple[str, ...]
    severity: int
    adv_rate: float
    adv_method: str
    eps: float
    alpha: float
    steps: int


@dataclass(frozen=True)
class Params:
    seed: int
    ratio: float
    selectors: tuple[str, ...]
    seeds: tuple[int, ...]
    device: str
    cpu_threads: int
    dataset: str
    root: str
    test_fraction: float
    split_seed: int
    image_size: int
    corrupt: CorruptParams
    pretrain: TrainParams
    pretrain_seeds: tuple[int, ...]
    attacker: TrainParams
    embed_batch_size: int
    train: TrainParams
    recipes: dict[str, Recipe] = field(default_factory=dict)
    loader: str = "auto"  # data.loader: auto | device | stream (data/stream.py)
    host_memory_gb: float = 4.0  # data.host_memory_gb: host budget of the streamed path


# --- small checkers: each returns the value or raises ConfigError naming the key -------------

def _fail(key: str, value: object, allowed: str) -> ConfigError:
    return ConfigError(f"params.yaml: {key} = {value!r} is not allowed: {allowed}")


def _get(tree: dict, key: str) -> Any:
    node: Any = tree
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise ConfigError(f"params.yaml: {key} is missing")
        node = node[part]
    return node


def _int(tree: dict, key: str, low: int | None = None) -> int:
    v = _get(tree, key)
    if isinstance(v, bool) or not isinstance(v, int) or (low is not None and v < low):
        raise _fail(key, v, f"an integer >= {low}" if low is not None else "an integer")
    return v


def _float(tree: dict, key: str, low: float, high: float, low_open: bool = False) -> float:
    v = _get(tree, key)
    ok = isinstance(v, (int, float)) and not isinstance(v, bool)
    if not ok or v > high or v < low or (low_open and v == low):
        raise _fail(key, v, f"a number in {'(' if low_open else '['}{low}, {high}]")
    return float(v)


def _choice(tree: dict, key: str, allowed: tuple[str, ...]) -> str:
    v = _get(tree, key)
    if v not in allowed:
        raise _fail(key, v, f"one of {', '.join(allowed)}")
    return v


def _bool(tree: dict, key: str) -> bool:
    v = _get(tree, key)
    if not isinstance(v, bool):
        raise _fail(key, v, "true or false")
    return v


def _list(tree: dict, key: str, item: Callable[[Any], bool], what: str, nonempty: bool = True):
    v = _get(tree, key)
    if not isinstance(v, list) or (nonempty and not v) or not all(item(x) for x in v):
        raise _fail(key, v, f"a {'non-empty ' if nonempty else ''}list of {what}")
    if len(set(map(str, v))) != len(v):
        raise _fail(key, v, "a list without duplicates")
    return tuple(v)


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


# --- sections ---------------------------------------------------------------------------------

def _train(tree: dict, sec: str) -> TrainParams:
    return TrainParams(
        model=_choice(tree, f"{sec}.model", MODELS),
        epochs=_int(tree, f"{sec}.epochs", 1),
        batch_size=_int(tree, f"{sec}.batch_size", 1),
        lr=_float(tree, f"{sec}.lr", 0.0, 10.0, low_open=True),
        momentum=_float(tree, f"{sec}.momentum", 0.0, 1.0),
        weight_decay=_float(tree, f"{sec}.weight_decay", 0.0, 1.0),
        nesterov=_bool(tree, f"{sec}.nesterov"),
        schedule=_choice(tree, f"{sec}.schedule", SCHEDULES),
        milestones=_list(tree, f"{sec}.milestones", _is_int, "epoch numbers", nonempty=False),
        gamma=_float(tree, f"{sec}.gamma", 0.0, 1.0, low_open=True),
        step_size=_int(tree, f"{sec}.step_size", 1),
        augment=_choice(tree, f"{sec}.augment", AUGMENTS),
        report=_choice(tree, f"{sec}.report", ("final", "best")),
        compile=_bool(tree, f"{sec}.compile"),
    )


def _corrupt(tree: dict) -> CorruptParams:
    c = CorruptParams(
        seed=_int(tree, "corrupt.seed", 0),
        label_rate=_float(tree, "corrupt.label_noise.rate", 0.0, 1.0),
        label_mode=_choice(tree, "corrupt.label_noise.mode", ("symmetric", "pair")),
        image_rate=_float(tree, "corrupt.images.rate", 0.0, 1.0),
        image_types=_list(tree, "corrupt.images.types", lambda x: x in CORRUPTIONS,
                          f"corruptions ({', '.join(CORRUPTIONS)})"),
        severity=_int(tree, "corrupt.images.severity", 1),
        adv_rate=_float(tree, "corrupt.adversarial.rate", 0.0, 1.0),
        adv_method=_choice(tree, "corrupt.adversarial.method", ("pgd", "fgsm")),
        eps=_float(tree, "corrupt.adversarial.eps", 0.0, 1.0, low_open=True),
        alpha=_float(tree, "corrupt.adversarial.alpha", 0.0, 1.0, low_open=True),
        steps=_int(tree, "corrupt.adversarial.steps", 1),
    )
    if c.severity > 5:
        raise _fail("corrupt.images.severity", c.severity, "an integer in 1..5")
    if c.image_rate + c.adv_rate > 1:
        raise _fail("corrupt.images.rate", c.image_rate,
                    f"at most 1 - corrupt.adversarial.rate = {1 - c.adv_rate:g} "
                    "(corrupted and adversarial images are disjoint)")
    return c


def _recipes(tree: dict, selectors: tuple[str, ...]) -> dict[str, Recipe]:
    from coreset.scores.registry import ParamError, load_all, validate_params

    registry = load_all()
    section = _get(tree, "recipes")
    if not isinstance(section, dict):
        raise _fail("recipes", section, "a mapping of recipe name -> {method, window, ...}")
    for name in selectors:
        if name not in section:
            raise _fail("selectors", name,
                        f"a recipe defined under `recipes:` ({', '.join(section)})")
    recipes = {}
    for name in section:
        key = f"recipes.{name}"
        method = _choice(tree, f"{key}.method", tuple(sorted(registry)))
        params = _get(tree, f"{key}.params")
        if not isinstance(params, dict):
            raise _fail(f"{key}.params", params, "a mapping (use {} for none)")
        try:
            full = validate_params(method, params)
        except ParamError as err:
            raise ConfigError(f"params.yaml: {key}.params.{err}") from None
        recipes[name] = Recipe(name, method, _choice(tree, f"{key}.window", WINDOWS),
                               _bool(tree, f"{key}.balance"), full)
    return recipes


def parse(tree: dict) -> Params:
    """Validate a params tree (the parsed params.yaml)."""
    if not isinstance(tree, dict):
        raise ConfigError("params.yaml: the file must be a mapping of keys to values")
    selectors = _list(tree, "selectors", lambda x: isinstance(x, str), "recipe names")
    device = _get(tree, "device")
    if not isinstance(device, str) or device.split(":")[0] not in ("auto", "cpu", "cuda", "mps"):
        raise _fail("device", device, "auto, cpu, cuda, cuda:N or mps")
    return Params(
        seed=_int(tree, "seed", 0),
        ratio=_float(tree, "ratio", 0.0, 1.0, low_open=True),
        selectors=selectors,
        seeds=_list(tree, "seeds", _is_int, "non-negative integers"),
        device=device,
        cpu_threads=_int(tree, "cpu_threads", 0),
        dataset=_choice(tree, "data.dataset", DATASETS),
        root=str(_get(tree, "data.root")),
        test_fraction=_float(tree, "data.test_fraction", 0.0, 1.0, low_open=True),
        split_seed=_int(tree, "data.split_seed", 0),
        image_size=_int(tree, "data.image_size", 8),
        corrupt=_corrupt(tree),
        pretrain=_train(tree, "pretrain"),
        pretrain_seeds=_list(tree, "pretrain.seeds", _is_int, "non-negative integers"),
        attacker=_train(tree, "attacker"),
        embed_batch_size=_int(tree, "embed.batch_size", 1),
        train=_train(tree, "train"),
        recipes=_recipes(tree, selectors),
        loader=_choice(tree, "data.loader", ("auto", "device", "stream")),
        host_memory_gb=_float(tree, "data.host_memory_gb", 0.0, 1e6, low_open=True),
    )


def load(path: str | Path = "params.yaml") -> Params:
    try:
        tree = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})".replace("\n", " ")) from None
    return parse(tree)
