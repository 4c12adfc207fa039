"""The Moderate paper's generalisation table (Table 8): coresets selected with one architecture
(pretrain.model, fixed for every cell) and trained on each of the others (train.model)."""

from pathlib import Path

import yaml

from coreset.experiments import tables as tables_cmd
from coreset.experiments.report.experiments import flatten
from coreset.experiments.report.specs import SPECS
from coreset.models import MODELS, min_size

ROOT = Path(__file__).resolve().parents[1]


def base_params() -> dict:
    return flatten(yaml.safe_load((ROOT / "params.yaml").read_text()))


def test_generalisation_plan_fixes_the_selecting_model_and_varies_the_trained_one():
    base = base_params()
    p = tables_cmd.plan("generalisation", base)
    assert p.fixed == {"pretrain.model": "resnet50"}
    assert p.cells == [{"train.model": m, "ratio": base["ratio"]}
                       for m in ("resnet50", "se_resnet18", "efficientnet_b0", "shufflenet_v2",
                                 "vit_s")]
    two = tables_cmd.plan("generalisation", base, ratios=[0.2, 0.3])
    assert [(c["ratio"], c["train.model"]) for c in two.cells[:6]] == [
        (0.2, "resnet50"), (0.2, "se_resnet18"), (0.2, "efficientnet_b0"),
        (0.2, "shufflenet_v2"), (0.2, "vit_s"), (0.3, "resnet50")]
    # a preset or -S that names the selecting model wins over the table's default
    own = tables_cmd.plan("generalisation", base, sets={"pretrain.model": "resnet18"})
    assert own.fixed["pretrain.model"] == "resnet18"


def test_tiny_generalisation_plan_uses_models_that_accept_digits():
    base = base_params()
    p = tables_cmd.plan("generalisation", base, tiny=True)
    assert p.fixed["pretrain.model"] == "small_cnn" and p.fixed["train.epochs"] == 3
    models = [c["train.model"] for c in p.cells]
    assert len(models) == len(set(models)) == 3 and "small_cnn" not in models
    assert all(m in MODELS and min_size(m) <= 8 for m in models)


def test_generalisation_spec_has_one_column_per_model_and_ratio():
    spec = SPECS["generalisation"]
    assert spec.free == ("train.model", "ratio")
    cell = {"train.model": "vit_s", "ratio": 0.2}
    assert spec.header(cell) == ("vit_s", "20%")
    assert spec.panel(cell) == "vit_s"


def test_dry_run_prints_one_command_per_cell():
    p = tables_cmd.plan("generalisation", base_params())
    commands = [tables_cmd.command({**p.fixed, **c}) for c in p.cells]
    assert commands[0] == ("dvc exp run --queue -S pretrain.model=resnet50 -S train.model=resnet50"
                           f" -S ratio={base_params()['ratio']}")
    assert len(set(commands)) == 5
