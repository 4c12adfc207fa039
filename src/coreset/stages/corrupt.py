"""corrupt: apply the scenario to the TRAINING split (the test split stays clean) and record every
perturbed sample: which, how, and its original label.

Corrupted images and adversarial images are disjoint random subsets; label noise is drawn
independently, so a sample can be both mislabeled and corrupted (the paper's mixed scenario).
The split is streamed (coreset.data.perturb): read memory-mapped, written chunk by chunk into an
``open_memmap`` images.npy, so peak memory is a few 64 MiB chunks, one corruption chunk's float
working set (~300 MB), the attack model and O(N) per-sample arrays (labels, kinds), never the
split itself.

Usage: python -m coreset.stages.corrupt   (reads corrupt.* in params.yaml)
"""

from __future__ import annotations

import numpy as np

from coreset import artifacts
from coreset.data.perturb import Attack, perturb_into
from coreset.data.sampling import count as budget
from coreset.io import atomic_dir, atomic_path, save_json
from coreset.params import Params
from coreset.stages._cli import no_args, run

EXAMPLES = "plots/corruptions.png"


def _attacker(p: Params) -> tuple[Attack, int]:
    """(attack(images, labels) on consecutive chunks with one seeded generator, its batch)."""
    import torch

    from coreset.data.adversarial import BATCH_SIZE, attack
    from coreset.training.device import Normalizer, pick_device

    m = artifacts.meta()
    device = pick_device(p.device, p.cpu_threads)
    model = artifacts.load_model(artifacts.ATTACKER, device)
    a = p.corrupt.adversarial
    normalize = Normalizer(m.mean, m.std, device)
    generator = torch.Generator().manual_seed(p.corrupt.seed)

    def run_attack(images: np.ndarray, labels: np.ndarray) -> np.ndarray:
        return attack(model, images, labels, method=a.method, eps=a.eps, alpha=a.alpha,
                      steps=a.steps, normalize=normalize, batch_size=BATCH_SIZE, device=device,
                      generator=generator, disable_progress=True)

    return run_attack, BATCH_SIZE


def example_figure(image: np.ndarray, types: tuple[str, ...], severity: int, seed: int) -> None:
    """One clean image and each corruption type applied to it, side by side (plots/)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from coreset.data.corruptions import CORRUPTIONS

    rng = np.random.default_rng(seed)
    panels = [("clean", image)] + [(t, CORRUPTIONS[t](image[None], severity, rng)[0])
                                   for t in types]
    fig, axes = plt.subplots(1, len(panels), figsize=(1.6 * len(panels), 1.9))
    for ax, (title, img) in zip(np.atleast_1d(axes), panels, strict=True):
        ax.imshow(img.squeeze(-1) if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=255)
        ax.set_title(title.replace("_", " "), fontsize=8)
        ax.axis("off")
    fig.suptitle(f"corruptions at severity {severity}", fontsize=9)
    fig.tight_layout()
    with atomic_path(EXAMPLES) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


outputs = no_args(artifacts.TRAIN, EXAMPLES)


def main(p: Params, argv: list[str]) -> None:
    images, labels = artifacts.raw_split("train", mmap=True)
    meta = artifacts.meta()
    adversarial = budget(len(labels), p.corrupt.adversarial.rate) > 0
    attack, batch = _attacker(p) if adversarial else (None, 1)
    with atomic_dir(artifacts.TRAIN) as tmp:
        out = np.lib.format.open_memmap(tmp / "images.npy", mode="w+", dtype=images.dtype,
                                        shape=images.shape)
        noisy, kind, flipped = perturb_into(images, labels, out, p.corrupt, meta.num_classes,
                                            attack, batch)
        out.flush()
        del out
        for key, arr in (("labels", noisy), ("true_labels", labels), ("image_kind", kind),
                         ("label_flipped", flipped)):
            np.save(tmp / f"{key}.npy", arr)
        kinds, counts = np.unique(kind[kind != ""], return_counts=True)
        summary = {"n": len(labels), "label_flipped": int(flipped.sum()),
                   "image_kind": {str(k): int(v) for k, v in zip(kinds, counts, strict=True)},
                   "perturbed": int(((kind != "") | flipped).sum())}
        save_json(tmp / "summary.json", summary)
    example_figure(np.array(images[0]), p.corrupt.images.types, p.corrupt.images.severity,
                   p.corrupt.seed)
    print(f"corrupt: {summary}")


if __name__ == "__main__":
    run(main, outputs)
