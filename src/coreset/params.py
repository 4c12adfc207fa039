"""The typed shape of params.yaml: one frozen dataclass per section, attribute names mirroring the
file one to one (``corrupt.adversarial.rate`` is ``p.corrupt.adversarial.rate``).

This module is the bottom of the package: it imports nothing from it, so the wings (data,
training, scores) can take the types they read without depending on what validates them. The
rule of every field, and the rules across keys, live one layer above the wings, in
:mod:`coreset.config`, which is the only way to build these objects from a file (``config.load``);
``tests/test_config.py`` checks that every field here has exactly one rule there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Data:
    dataset: str
    root: str
    test_fraction: float
    split_seed: int
    image_size: int
    loader: str
    host_memory_gb: float


@dataclass(frozen=True)
class LabelNoise:
    rate: float
    mode: str


@dataclass(frozen=True)
class Images:
    rate: float
    types: tuple[str, ...]
    severity: int


@dataclass(frozen=True)
class Adversarial:
    rate: float
    method: str
    eps: float
    alpha: float
    steps: int


@dataclass(frozen=True)
class Corrupt:
    seed: int
    label_noise: LabelNoise
    images: Images
    adversarial: Adversarial


@dataclass(frozen=True)
class TrainParams:
    """A training run's recipe: the `attacker` and `train` sections (`pretrain` adds `seeds`)."""

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
    compile: bool = False  # torch.compile the model (CUDA)


@dataclass(frozen=True, kw_only=True)
class PretrainParams(TrainParams):
    seeds: tuple[int, ...]


@dataclass(frozen=True, kw_only=True)
class CoresetTrainParams(TrainParams):
    """The `train` section: a TrainParams plus the protocol of the coreset runs (training.dynamic):
    the budget (epochs over the subset, or a fixed number of SGD steps) and the selection during
    training. Pretraining and the attacker always train for `epochs` over their full data."""

    budget: str
    steps: int  # >= 1 when budget is steps (config.parse)
    dynamic: str
    dynamic_ratio: float
    infobatch_prune: float
    infobatch_anneal: float

    def protocol(self) -> dict[str, Any]:
        """What every result records about how it was trained (and training.dynamic.protocol_line
        states in a caption): the budget and its length, batch, reported epoch, dynamic method."""
        out = {"budget": self.budget, "epochs": self.epochs, "steps": self.steps,
               "batch_size": self.batch_size, "report": self.report, "dynamic": self.dynamic}
        if self.dynamic == "rs2":
            out["dynamic_ratio"] = self.dynamic_ratio
        if self.dynamic == "infobatch":
            out |= {"infobatch_prune": self.infobatch_prune,
                    "infobatch_anneal": self.infobatch_anneal}
        return out


@dataclass(frozen=True)
class Embed:
    batch_size: int


@dataclass(frozen=True)
class Recipe:
    """One selector configuration: a registered method, its parameters (the method's defaults
    filled in), and the window and balance that `select` applies to its score."""

    name: str
    method: str
    window: str
    balance: bool
    params: dict[str, Any]
    # the sampler windows' parameters (strata, beta: coreset.scores.samplers), defaults filled in
    window_params: dict[str, Any] = field(default_factory=dict)

    def variant(self) -> dict[str, Any]:
        """Exactly what selects: method, every parameter (defaults filled in by the code that
        runs), window, window parameters and balance; the recipe's name is not part of it.
        Answers per cell which AUM (``space``), which end (``window``), which D2 score."""
        return {"method": self.method, "params": dict(self.params), "window": self.window,
                "window_params": dict(self.window_params), "balance": self.balance}


@dataclass(frozen=True)
class Params:
    """The whole file."""

    seed: int
    ratio: float
    selectors: tuple[str, ...]  # names of recipes (config.parse checks they are defined)
    seeds: tuple[int, ...]
    device: str
    cpu_threads: int
    data: Data
    corrupt: Corrupt
    pretrain: PretrainParams
    attacker: TrainParams
    embed: Embed
    train: CoresetTrainParams
    recipes: dict[str, Recipe]
