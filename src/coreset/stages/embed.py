"""embed: one eval-mode pass of each pretrained model over the training split: penultimate
features (first model), softmax outputs, per-sample loss and the closed-form last-layer gradient
norm (||p - y|| * sqrt(1 + ||h||^2), no backprop). float32 on every device (training.predict):
a selection does not depend on the device's precision.

Memory: the outputs, M x N x (C + 2) x 4 bytes for M = len(pretrain.seeds) models + N x F x 4 of
features, allocated once and filled batch by batch; the images stay resident only within what
the outputs leave of ``data.host_memory_gb``, else they are streamed. The outputs themselves are
not bounded by the budget: at ImageNet shape each model's softmax is 4.8 GiB.

Usage: python -m coreset.stages.embed   (reads embed.*, pretrain.seeds in params.yaml)
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from coreset import artifacts
from coreset.data.stream import as_images
from coreset.io import save_npz
from coreset.params import Params
from coreset.stages._cli import no_args, run
from coreset.training.device import Normalizer, pick_device
from coreset.training.loop import predict_batches

outputs = no_args(artifacts.EMBED)


def main(p: Params, argv: list[str]) -> None:
    m = artifacts.meta()
    device = pick_device(p.device, p.cpu_threads)
    train = artifacts.training_set()
    labels = torch.from_numpy(train["labels"]).to(device)
    norm = Normalizer(m.mean, m.std, device)
    n, models = len(train["labels"]), len(p.pretrain.seeds)
    # the outputs are allocated once and filled batch by batch: the host holds the artifact
    # itself and one batch, never the N x C logits, errors or one-hot labels of a whole model
    out = {"probs": np.empty((models, n, m.num_classes), np.float32),
           "loss": np.empty((models, n), np.float32),
           "grad_norm": np.empty((models, n), np.float32)}
    features = images = None
    for k, seed in enumerate(p.pretrain.seeds):
        model = artifacts.load_model(artifacts.PRETRAIN / f"seed{seed}.pt", device)
        if images is None:  # resident only within what the outputs leave of the host budget
            held = sum(a.nbytes for a in out.values()) + n * model.classifier.in_features * 4
            images = as_images(train["images"], device, p.data.loader,
                               max(p.data.host_memory_gb - held / 2**30, 0.0))
        for start, logits, h in predict_batches(model, images, norm, p.embed.batch_size):
            rows = slice(start, start + len(logits))
            if features is None:  # Moderate and the geometry selectors use the first model's
                features = np.empty((n, h.shape[1]), np.float32)
            if k == 0:
                features[rows] = h.cpu().numpy()
            for name, value in _per_sample(logits, h, labels[rows], m.num_classes).items():
                out[name][k, rows] = value.cpu().numpy()
    save_npz(artifacts.EMBED, features=features, **out)
    print(f"embed: features {features.shape}, {models} model(s)")


def _per_sample(logits: torch.Tensor, h: torch.Tensor, labels: torch.Tensor,
                num_classes: int) -> dict[str, torch.Tensor]:
    """Softmax, cross-entropy and the closed-form last-layer gradient norm of one batch (each a
    function of the sample's own row, so a batch gives the rows that the whole set would)."""
    prob = logits.softmax(1)
    err = prob - F.one_hot(labels, num_classes).float()
    return {"probs": prob, "loss": F.cross_entropy(logits, labels, reduction="none"),
            "grad_norm": err.norm(dim=1) * (1 + h.square().sum(1)).sqrt()}


if __name__ == "__main__":
    run(main, outputs)
