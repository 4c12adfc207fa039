"""CUDA paths (run by benchmarks/gpu_check.sh; skipped without CUDA): a training step with bf16
autocast + channels_last and no per-step host sync, float32 embeddings equal to the CPU's, and
the streamed loader with pinned memory and a side stream."""

import numpy as np
import pytest
import torch

from coreset.data.stream import DeviceImages, StreamedImages, as_images
from coreset.models import create
from coreset.params import TrainParams
from coreset.training.device import Normalizer
from coreset.training.loop import fit, predict

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]
TP = TrainParams(model="resnet18", epochs=1, batch_size=32, lr=0.05, momentum=0.9,
                 weight_decay=5e-4, nesterov=True, schedule="cosine", milestones=(), gamma=0.1,
                 step_size=1, augment="crop_flip", report="final")
CUDA = torch.device("cuda")


def _data(n, size=32, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8),
            rng.integers(0, 10, n).astype(np.int64))


def test_cuda_training_step_is_bf16_channels_last_and_learns():
    x, y = _data(256)
    torch.manual_seed(0)
    model = create("resnet18", 10, 3, 32).to(CUDA)
    seen = {}
    hook = model.classifier.register_forward_hook(
        lambda m, i, o: seen.setdefault("dtype", o.dtype))
    res = fit(model, torch.from_numpy(x).to(CUDA), torch.from_numpy(y).to(CUDA),
              TrainParams(**{**TP.__dict__, "epochs": 3}), Normalizer([0.5] * 3, [0.25] * 3, CUDA),
              seed=0, augment="crop_flip", record_dynamics=True)
    hook.remove()
    assert seen["dtype"] == torch.bfloat16  # autocast was on in training
    assert model.body.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]
    assert res.correct.shape == (3, 256) and np.isfinite(res.loss).all()


def test_no_host_sync_per_step():
    """The number of device->host syncs of an epoch does not grow with its number of steps."""
    import warnings

    def syncs(n):
        x, y = _data(n)
        torch.manual_seed(0)
        model = create("small_cnn", 10, 3, 32).to(CUDA)
        images, labels = torch.from_numpy(x).to(CUDA), torch.from_numpy(y).to(CUDA)
        torch.cuda.synchronize()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                fit(model, images, labels, TP, Normalizer([0.5] * 3, [0.25] * 3, CUDA),
                    seed=0, augment="crop_flip", record_dynamics=True)
            finally:
                torch.cuda.set_sync_debug_mode("default")
        return sum("synchroniz" in str(w.message) for w in caught)

    assert syncs(4 * 32) == syncs(16 * 32)


def test_cuda_embeddings_are_float32_and_match_the_cpu():
    x, _ = _data(128)
    torch.manual_seed(0)
    model = create("resnet18", 10, 3, 32).eval()
    norm_cpu = Normalizer([0.5] * 3, [0.25] * 3, torch.device("cpu"))
    logits_cpu, feats_cpu = predict(model, torch.from_numpy(x), norm_cpu, features=True)
    model_gpu = model.to(CUDA).to(memory_format=torch.channels_last)  # as left by training
    logits, feats = predict(model_gpu, torch.from_numpy(x).to(CUDA),
                            Normalizer([0.5] * 3, [0.25] * 3, CUDA), features=True)
    assert feats.dtype == torch.float32
    # float32 on both (no bf16, no TF32): agreement to float32 rounding, far inside bf16's 1e-2
    assert torch.allclose(feats.cpu(), feats_cpu, rtol=1e-4, atol=1e-4)
    assert torch.allclose(logits.cpu(), logits_cpu, rtol=1e-4, atol=1e-4)


def test_streamed_loader_on_cuda_equals_resident(tmp_path):
    x, _ = _data(300)
    np.save(tmp_path / "x.npy", x)
    images = np.load(tmp_path / "x.npy", mmap_mode="r")
    rows = np.arange(299, -1, -3)
    streamed = as_images(images, CUDA, "stream", rows=rows)
    assert isinstance(streamed, StreamedImages)
    resident = DeviceImages(torch.from_numpy(x[rows]).to(CUDA))
    order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(0))
    for (i1, b1), (i2, b2) in zip(resident.batches(order, 16), streamed.batches(order, 16),
                                  strict=True):
        assert b2.device.type == "cuda" and torch.equal(i1, i2) and torch.equal(b1, b2)
