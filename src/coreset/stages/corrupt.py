"""corrupt: apply the scenario to the TRAINING split (the test split stays clean) and record every
perturbed sample: which, how, and its original label.

Corrupted images and adversarial images are disjoint random subsets; label noise is drawn
independently, so a sample can be both mislabeled and corrupted (the paper's mixed scenario).

Usage: python -m coreset.stages.corrupt   (reads corrupt.* in params.yaml)
"""

from __future__ import annotations

import numpy as np

from coreset import artifacts
from coreset.config import Params
from coreset.data.sampling import count as budget
from coreset.io import atomic_dir, atomic_path, save_json
from coreset.stages._cli import no_args, run

EXAMPLES = "plots/corruptions.png"


def perturb(p: Params, images: np.ndarray, labels: np.ndarray, num_classes: int):
    """Returns (images, labels, image_kind, label_flipped); inputs are not modified."""
    c = p.corrupt
    rng = np.random.default_rng(c.seed)
    images = images.copy()
    kind = np.full(len(labels), "", dtype="<U16")
    order = rng.permutation(len(labels))
    n_img = budget(len(labels), c.images.rate)
    n_adv = budget(len(labels), c.adversarial.rate)
    img_idx, adv_idx = np.sort(order[:n_img]), np.sort(order[n_img : n_img + n_adv])
    if n_img:
        from coreset.data.corruptions import corrupt_images

        images[img_idx], kind[img_idx] = corrupt_images(
            images[img_idx], 1.0, list(c.images.types), c.images.severity, rng)
    if n_adv:
        images[adv_idx] = _attack(p, images[adv_idx], labels[adv_idx])
        kind[adv_idx] = c.adversarial.method
    noisy = labels
    if c.label_noise.rate > 0:
        from coreset.data.label_noise import flip_labels

        noisy = flip_labels(labels, c.label_noise.rate, num_classes, c.label_noise.mode, rng)
    return images, noisy, kind, noisy != labels


def _attack(p: Params, images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    from coreset.data.adversarial import attack
    from coreset.training.device import Normalizer, pick_device

    m = artifacts.meta()
    device = pick_device(p.device, p.cpu_threads)
    model = artifacts.load_model(artifacts.ATTACKER, device)
    a = p.corrupt.adversarial
    return attack(model, images, labels, method=a.method, eps=a.eps, alpha=a.alpha,
                  steps=a.steps, normalize=Normalizer(m.mean, m.std, device), device=device,
                  seed=p.corrupt.seed)


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
    images, labels = artifacts.raw_split("train")
    meta = artifacts.meta()
    new_images, noisy, kind, flipped = perturb(p, images, labels, meta.num_classes)
    with atomic_dir(artifacts.TRAIN) as tmp:
        for key, arr in (("images", new_images), ("labels", noisy), ("true_labels", labels),
                         ("image_kind", kind), ("label_flipped", flipped)):
            np.save(tmp / f"{key}.npy", arr)
        kinds, counts = np.unique(kind[kind != ""], return_counts=True)
        summary = {"n": len(labels), "label_flipped": int(flipped.sum()),
                   "image_kind": {str(k): int(v) for k, v in zip(kinds, counts, strict=True)},
                   "perturbed": int(((kind != "") | flipped).sum())}
        save_json(tmp / "summary.json", summary)
    example_figure(images[0], p.corrupt.images.types, p.corrupt.images.severity, p.corrupt.seed)
    print(f"corrupt: {summary}")


if __name__ == "__main__":
    run(main, outputs)
