"""attacker: the model that crafts adversarial training examples, trained on the CLEAN data.

Only trained when corrupt.adversarial.rate > 0; otherwise a marker is written, so that the
clean default pipeline pays nothing for it.

Usage: python -m coreset.stages.attacker
(reads attacker.*, corrupt.seed and corrupt.adversarial.rate in params.yaml)
"""

from __future__ import annotations

from coreset import artifacts
from coreset.params import Params
from coreset.stages._cli import no_args, run
from coreset.training.fitting import train_model

outputs = no_args(artifacts.ATTACKER)


def main(p: Params, argv: list[str]) -> None:
    if p.corrupt.adversarial.rate == 0:
        artifacts.save_checkpoint(artifacts.ATTACKER, {"skipped": True})
        print("attacker: corrupt.adversarial.rate = 0, nothing to train")
        return
    images, labels = artifacts.raw_split("train")
    model, name, _ = train_model(p, p.attacker, images, labels, seed=p.corrupt.seed,
                                 desc="attacker")
    artifacts.save_model(artifacts.ATTACKER, model, name, artifacts.meta())


if __name__ == "__main__":
    run(main, outputs)
