"""`coreset show` keeps params and metrics and drops the recipe catalogue and hash columns."""

import re

from coreset.experiments import show


def test_drop_pattern_keeps_what_a_reader_needs():
    dropped = ["recipes.el2n.window", "recipes.moderate.params.center", "data/raw",
               "src/coreset/config.py", "models/pretrain", "metrics/train", "plots/curves/train"]
    kept = ["ratio", "train.epochs", "data.dataset", "accuracy.moderate", "std.el2n",
            "corrupt.label_noise.rate", "selectors", "Experiment"]
    assert all(re.search(show.DROP, c) for c in dropped)
    assert not any(re.search(show.DROP, c) for c in kept)
    cmd = show.command(["--only-changed"])
    assert cmd[-1] == "--only-changed" and cmd[cmd.index("--drop") + 1] == show.DROP
