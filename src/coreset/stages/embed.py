"""embed: one eval-mode pass of each pretrained model over the training split: penultimate
features (first model), softmax outputs, per-sample loss and the closed-form last-layer gradient
norm (||p - y|| * sqrt(1 + ||h||^2), no backprop). float32 on every device (training.predict):
a selection does not depend on the device's precision.

Usage: python -m coreset.stages.embed   (reads embed.*, pretrain.seeds in params.yaml)
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from coreset import artifacts
from coreset.config import Params
from coreset.data.stream import as_images
from coreset.io import save_npz
from coreset.stages._cli import no_args, run
from coreset.training.device import Normalizer, pick_device
from coreset.training.loop import predict

outputs = no_args(artifacts.EMBED)


def main(p: Params, argv: list[str]) -> None:
    m = artifacts.meta()
    device = pick_device(p.device, p.cpu_threads)
    train = artifacts.training_set()
    images = as_images(train["images"], device, p.data.loader, p.data.host_memory_gb)
    labels = torch.from_numpy(train["labels"]).to(device)
    norm = Normalizer(m.mean, m.std, device)
    probs, losses, grad_norms, features = [], [], [], None
    for seed in p.pretrain.seeds:
        model = artifacts.load_model(artifacts.PRETRAIN / f"seed{seed}.pt", device)
        logits, h = predict(model, images, norm, p.embed.batch_size, features=True)
        prob = logits.softmax(1)
        err = prob - F.one_hot(labels, m.num_classes).float()
        probs.append(prob.cpu().numpy())
        losses.append(F.cross_entropy(logits, labels, reduction="none").cpu().numpy())
        grad_norms.append((err.norm(dim=1) * (1 + h.square().sum(1)).sqrt()).cpu().numpy())
        if features is None:  # Moderate and the geometry selectors use the first model's features
            features = h.cpu().numpy()
    save_npz(artifacts.EMBED, features=features.astype(np.float32), probs=np.stack(probs),
             loss=np.stack(losses), grad_norm=np.stack(grad_norms))
    print(f"embed: features {features.shape}, {len(probs)} model(s)")


if __name__ == "__main__":
    run(main, outputs)
