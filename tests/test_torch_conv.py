"""The PyTorch float32 limb engine against exact int64 convolution.

The engine's claim is exactness: every float32 partial sum stays within 2^24, limb results
combine exactly in float64. These tests give it operands at the extremes of their types
(where a wrong bound would show first), limb plans of one to four convolutions, groups,
strides, asymmetric padding and 1-, 2- and 3-d kernels, and compare with int64 sums.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch  # noqa: F401  (loaded: the engine runs only in processes that have PyTorch)

import fxq
from fxq.fixed import FixedType
from fxq.ops import linear, torch_conv
from fxq.ops.linear import conv as int_conv            # the float kernel sums int64 exactly
from fxq.quantized import uniform

CASES = [
    # nd, channels, outputs, groups, kernel, stride, pads (begin..., end...), x bits, w bits
    (2, 16, 16, 1, 3, 1, (1, 1, 1, 1), 8, 8),
    (2, 16, 16, 1, 3, 1, (1, 1, 1, 1), 16, 16),        # two limbs each side
    (2, 8, 8, 8, 3, 2, (1, 0, 1, 0), 16, 12),          # depthwise, strided, asymmetric
    (2, 12, 6, 3, 3, 1, (0, 0, 2, 1), 10, 9),          # grouped
    (2, 1, 8, 1, 5, 1, (2, 2, 2, 2), 16, 8),
    (1, 8, 16, 1, 5, 1, (2, 2), 12, 12),
    (1, 6, 6, 6, 3, 3, (0, 2), 8, 16),
    (3, 4, 4, 2, 3, 1, (1, 1, 1, 0, 0, 0), 9, 7),
]


def _extreme(rng, shape, bits):
    """Raw values of a signed `bits`-bit type, mostly at its two ends."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    v = rng.integers(lo, hi + 1, size=shape)
    ends = rng.random(shape) < 0.7
    return np.where(ends, np.where(rng.random(shape) < 0.5, lo, hi), v).astype(np.int64)


@pytest.mark.parametrize("case", CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_conv_sum_equals_int64(case):
    nd, c, o, groups, k, stride, pads, x_bits, w_bits = case
    rng = np.random.default_rng(len(CASES) + c * o + x_bits)
    x = _extreme(rng, (5, c) + (7,) * nd, x_bits)
    w = _extreme(rng, (o, c // groups) + (k,) * nd, w_bits)
    bias = rng.integers(-1000, 1000, size=o)
    strides = (stride,) * nd
    want = int_conv(x, w, strides=strides, pads=pads, groups=groups)
    bound = (1 << (x_bits - 1)) * int(np.abs(w.reshape(o, -1)).sum(axis=1).max()) * 4 + 1000
    dtypes = [np.float64] + ([np.float32] if bound <= 1 << 23 else [])
    for scale in (1.0, 4.0):
        plan = torch_conv.make_plan(1 << (x_bits - 1), w, scale)
        if plan is None:
            pytest.skip("no plan of at most two limbs a side")
        for dtype in dtypes:
            got = torch_conv.conv_sum(plan, x, strides, pads, groups, dtype, bias)
            assert got is not None, "PyTorch chose an inexact backend"
            assert got.dtype == dtype
            expect = want * int(scale) + bias.reshape((1, -1) + (1,) * nd)
            assert np.array_equal(got.astype(np.int64), expect), (scale, dtype)


def test_plans_keep_every_limb_pair_within_float32():
    rng = np.random.default_rng(0)
    w = _extreme(rng, (16, 16, 3, 3), 16)
    xs, ws = torch_conv.plan_conv(1 << 15, w)
    assert len(xs) * len(ws) > 1                        # 16 x 16 bits over 144 taps
    for xl in xs:
        x_max = torch_conv._limb_bound(xl, 1 << 15)
        for wl in ws:
            assert x_max * torch_conv._weight_limb_sum(w, wl) <= torch_conv.F32_EXACT


def test_plan_refuses_what_four_convolutions_cannot_hold():
    w = np.full((1, 4096, 3, 3), -(1 << 23), dtype=np.int64)
    assert torch_conv.plan_conv(1 << 23, w) is None


@pytest.mark.parametrize("setting", ["conv", "matmul"])
def test_engine_refuses_reduced_precision(setting):
    x = np.ones((16, 4, 6, 6), dtype=np.int64)
    w = np.ones((4, 4, 3, 3), dtype=np.int64)
    plan = torch_conv.make_plan(1, w)
    assert torch_conv.conv_sum(plan, x, (1, 1), (1, 1, 1, 1), 1, np.float32) is not None
    backend = getattr(torch.backends.mkldnn, setting)
    before = backend.fp32_precision
    backend.fp32_precision = "bf16"
    try:
        assert torch_conv.conv_sum(plan, x, (1, 1), (1, 1, 1, 1), 1, np.float32) is None
    finally:
        backend.fp32_precision = before


def test_engine_declines_without_pytorchs_backend_query(monkeypatch):
    x = np.ones((16, 4, 6, 6), dtype=np.int64)
    plan = torch_conv.make_plan(1, np.ones((4, 4, 3, 3), dtype=np.int64))
    monkeypatch.delattr(torch._C, "_select_conv_backend")
    assert torch_conv.conv_sum(plan, x, (1, 1), (1, 1, 1, 1), 1, np.float32) is None


@pytest.mark.parametrize("name", ["cnn_bn", "resnet", "dwsep", "conv1d"])
def test_zoo_simulation_is_the_same_with_and_without_the_engine(zoo_dir, name, monkeypatch):
    g = fxq.load(os.path.join(zoo_dir, name, "model.onnx"))
    data = np.load(os.path.join(zoo_dir, name, "test.npz"))["x"][:200]
    calib = np.load(os.path.join(zoo_dir, name, "calib.npz"))["x"]
    graphs = [uniform(g, data=FixedType(16, 10), weight=FixedType(16, 12)),
              fxq.quantize(g, calib, bits=8)]
    with_engine = [q.evaluate(data) for q in graphs]
    engaged = [fx.derived.get("torch_plan") for q in graphs for fx in q._fixed_nodes.values()]
    assert any(plan is not None for plan in engaged)
    monkeypatch.setattr(linear, "_conv_torch", lambda fx, x: None)
    graphs = [uniform(g, data=FixedType(16, 10), weight=FixedType(16, 12)),
              fxq.quantize(g, calib, bits=8)]
    for q, got in zip(graphs, with_engine):
        for name_, want in q.evaluate(data).items():
            assert np.array_equal(got[name_], want), name_
