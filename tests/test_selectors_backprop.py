"""Per-sample gradient norms (torch.func) against brute-force per-sample backward passes."""

from __future__ import annotations

import numpy as np
import torch

from coreset.scores import backprop
from coreset.scores.backprop import full_grad_norms, input_grad_norms
from helpers_selectors import make_access, make_ctx, trained_bn_cnn


def _loop_param_grad_norms(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    net.eval()
    out = []
    for i in range(len(x)):
        net.zero_grad()
        torch.nn.functional.cross_entropy(net(x[i:i + 1]), y[i:i + 1]).backward()
        sq = sum(float(p.grad.double().square().sum()) for p in net.parameters())
        out.append(np.sqrt(sq))
    return np.array(out)


def _loop_input_grad_norms(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    out = []
    for i in range(len(x)):
        xi = x[i:i + 1].clone().requires_grad_(True)
        torch.nn.functional.cross_entropy(net(xi), y[i:i + 1]).backward()
        out.append(float(xi.grad.double().norm()))
    return np.array(out)


def test_full_grad_norms_equal_per_sample_backward_with_batchnorm() -> None:
    net, x, y = trained_bn_cnn(seed=0, n=20)
    want = _loop_param_grad_norms(net, x, y)
    access = make_access([net], x, y)
    access.models[0].train()  # full_grad_norms must switch to eval mode itself, then restore
    got = full_grad_norms(access, batch_size=7)
    assert net.training
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert np.ptp(want) > 0.1 * want.mean()  # the samples really differ


def test_input_grad_norms_equal_per_sample_backward() -> None:
    net, x, y = trained_bn_cnn(seed=2, n=20)
    want = _loop_input_grad_norms(net, x, y)
    got = input_grad_norms(make_access([net], x, y), batch_size=6)
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_input_grad_selector_averages_the_models() -> None:
    net0, x, y = trained_bn_cnn(seed=3, n=10)
    net1, _, _ = trained_bn_cnn(seed=4, n=10)
    access = make_access([net0, net1], x, y)
    ctx = make_ctx(y.numpy(), 3, model=access)
    rng = np.random.default_rng(0)
    both = backprop.input_grad(ctx, rng=rng, balance=True, models="all")
    first = backprop.input_grad(ctx, rng=rng, balance=True, models="first")
    per = [_loop_input_grad_norms(n, x, y) for n in (net0, net1)]
    np.testing.assert_allclose(both, np.mean(per, axis=0), rtol=1e-5)
    np.testing.assert_allclose(first, per[0], rtol=1e-5)
