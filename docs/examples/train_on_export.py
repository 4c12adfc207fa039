"""Train your own PyTorch model on a selection exported by `coreset export` (quoted in the README;
tests/test_export_dvc.py runs it). Usage: python docs/examples/train_on_export.py EXPORT_DIR"""

import json
import sys

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset, TensorDataset

export = sys.argv[1] if len(sys.argv) > 1 else "exports/workspace/moderate"
kept = np.load(f"{export}/kept_indices.npy")  # indices of the KEPT samples into the training split
weights = np.load(f"{export}/kept_weights.npy")  # 1.0, except for craig / gradmatch
with open(f"{export}/selection.json") as f:
    meta = json.load(f)

# Your training set, in the order of data/raw/train_*.npy (here the repository's own arrays;
# data/train/labels.npy holds the noisy labels of a label-noise experiment).
images = torch.from_numpy(np.load("data/raw/train_images.npy")).permute(0, 3, 1, 2) / 255.0
labels = torch.from_numpy(np.load("data/raw/train_labels.npy"))
assert len(labels) == meta["n_train"], "not the training split the selection was made on"
w = torch.zeros(len(labels))
w[kept] = torch.from_numpy(weights)
subset = Subset(TensorDataset(images, labels, w), kept.tolist())

torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(images[0].numel(), 10))
opt = torch.optim.SGD(model.parameters(), lr=0.5)
for _epoch in range(20):
    for x, y, wb in DataLoader(subset, batch_size=64, shuffle=True):
        loss = (wb * F.cross_entropy(model(x), y, reduction="none")).sum() / wb.sum()
        opt.zero_grad()
        loss.backward()
        opt.step()

with torch.no_grad():
    accuracy = (model(images).argmax(1) == labels).float().mean().item()
print(f"trained on {len(subset)} of {len(labels)} samples ({meta['recipe']}): "
      f"accuracy on the whole training split {accuracy:.3f}")
