"""The four MLPerf Tiny reference networks, shaped as the benchmark defines them, trained for
seconds on generated data (no downloads), exported through both of torch's exporters.

    resnet8      image classification, 32x32x3, 10 classes: three residual stacks (16, 32,
                 64 filters; 1x1 convolution shortcuts where the shape changes)
    ds_cnn       keyword spotting, 49x10 features, 12 classes: a 10x4 stride-2 convolution
                 with Keras-style 'same' padding (an explicit ZeroPad2d), four depthwise-
                 separable blocks of 64 channels, global average pooling
    mobilenet    visual wake words, 96x96x3, 2 classes: MobileNetV1 at width 0.25
    autoencoder  anomaly detection, 640 features: the FC autoencoder (128 x 4, 8, 128 x 4)

The data are class templates plus noise (the classifiers) and a low-rank signal whose
anomalies leave its subspace (the autoencoder): what matters here is the networks' shapes
and operators, not their task accuracy. `build(name, out_dir)` writes model.onnx
(TorchScript), model_dynamo.onnx (torch.export), calib.npz and test.npz ("x", and labels
"y": classes, or 0/1 normal/anomalous) and returns the float test metric.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from zoo import Dataset as Data   # the same six arrays
from zoo import train

SEED = 0


def _cbr(cin: int, cout: int, k, s=1, p=0, groups: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, k, s, p, groups=groups, bias=False), nn.BatchNorm2d(cout),
            nn.ReLU()]


class _Residual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.a = nn.Sequential(*_cbr(cin, cout, 3, stride, 1))
        self.b = nn.Sequential(nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
        self.short = nn.Identity() if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.b(self.a(x)) + self.short(x))


def resnet8() -> nn.Module:
    return nn.Sequential(*_cbr(3, 16, 3, 1, 1), _Residual(16, 16, 1), _Residual(16, 32, 2),
                         _Residual(32, 64, 2), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(64, 10))


def ds_cnn() -> nn.Module:
    # Keras 'same' for a 10x4 kernel at stride 2 on 49x10: pad rows 4/5, columns 1/2
    layers = [nn.ZeroPad2d((1, 2, 4, 5)), *_cbr(1, 64, (10, 4), 2)]
    for _ in range(4):
        layers += _cbr(64, 64, 3, 1, 1, groups=64) + _cbr(64, 64, 1)
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 12))


def mobilenet() -> nn.Module:
    chans = [8, 16, 32, 32, 64, 64, 128, 128, 128, 128, 128, 128, 256, 256]
    strides = [2, 1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1]
    layers = _cbr(3, chans[0], 3, strides[0], 1)
    for cin, cout, s in zip(chans[:-1], chans[1:], strides[1:]):
        layers += _cbr(cin, cin, 3, s, 1, groups=cin) + _cbr(cin, cout, 1)
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(256, 2))


def autoencoder() -> nn.Module:
    def block(i: int, o: int) -> list[nn.Module]:
        return [nn.Linear(i, o), nn.BatchNorm1d(o), nn.ReLU()]
    sizes = [640, 128, 128, 128, 128, 8, 128, 128, 128, 128]
    layers = [m for i, o in zip(sizes[:-1], sizes[1:]) for m in block(i, o)]
    return nn.Sequential(*layers, nn.Linear(128, 640))


def _templates(shape, classes: int, n: int, noise: float, rng) -> tuple[np.ndarray, np.ndarray]:
    """Each class a smooth random template; samples are templates plus noise."""
    base = rng.normal(size=(classes,) + shape)
    for axis in range(1, len(shape)):             # smooth along the spatial axes
        base = (base + np.roll(base, 1, axis=axis + 1) + np.roll(base, -1, axis=axis + 1)) / 3
    base /= base.std(axis=tuple(range(1, base.ndim)), keepdims=True)
    y = rng.integers(0, classes, n)
    x = base[y] + rng.normal(0, noise, (n,) + shape)
    return x.astype(np.float32), y


def _split(x, y, n_train, n_calib) -> Data:
    return Data(x[:n_train], y[:n_train], x[:n_calib], y[:n_calib], x[n_train:], y[n_train:])


def classes(shape, classes_: int, n: int = 900, noise: float = 2.0) -> Callable[[], Data]:
    def make() -> Data:
        x, y = _templates(shape, classes_, n, noise, np.random.default_rng(SEED))
        return _split(x, y, int(0.7 * n), 256)
    return make


def anomalies(n: int = 900, rank: int = 6) -> Data:
    """Normal samples on a random rank-6 subspace of R^640 plus noise; the test set adds
    anomalies off it. Training and calibration use normal samples only."""
    rng = np.random.default_rng(SEED)
    basis = rng.normal(size=(rank, 640)) / np.sqrt(rank)
    normal = (rng.normal(size=(n, rank)) @ basis + rng.normal(0, 0.1, (n, 640))).astype(np.float32)
    n_train = int(0.7 * n)
    odd = (rng.normal(size=(n - n_train, 640)) * 0.6).astype(np.float32)
    x_test = np.concatenate([normal[n_train:], odd])
    y_test = np.r_[np.zeros(n - n_train), np.ones(n - n_train)].astype(np.int64)
    zeros = np.zeros(n_train, dtype=np.int64)
    return Data(normal[:n_train], zeros, normal[:256], zeros[:256], x_test, y_test)


@dataclass(frozen=True)
class Entry:
    make: Callable[[], nn.Module]
    data: Callable[[], Data]
    epochs: int
    io_type: str                   # the io type the benchmark and tests compile it for


TINY: dict[str, Entry] = {
    "resnet8": Entry(resnet8, classes((3, 32, 32), 10), epochs=4, io_type="io_stream"),
    "ds_cnn": Entry(ds_cnn, classes((1, 49, 10), 12), epochs=12, io_type="io_stream"),
    "mobilenet": Entry(mobilenet, classes((3, 96, 96), 2, n=400), epochs=10,
                       io_type="io_stream"),
    "autoencoder": Entry(autoencoder, anomalies, epochs=20, io_type="io_parallel"),
}


def metric(name: str, model: nn.Module, data: Data) -> float:
    """Test accuracy (classifiers) or ROC AUC of the reconstruction error (autoencoder)."""
    from fxq.task import quality

    with torch.no_grad():
        y = model(torch.from_numpy(data.x_test)).numpy()
    task = "anomaly" if name == "autoencoder" else "classify"
    return quality(task, data.x_test, data.y_test, y, y)["float"]


def build(name: str, out_dir: str) -> float:
    from fxq.torch_export import export_onnx

    entry = TINY[name]
    torch.manual_seed(SEED)
    data = entry.data()
    model = entry.make()
    train(model, data, entry.epochs, reconstruct=name == "autoencoder")
    os.makedirs(out_dir, exist_ok=True)
    example = torch.from_numpy(data.x_calib[:2])
    export_onnx(model, example, os.path.join(out_dir, "model.onnx"))
    export_onnx(model, example, os.path.join(out_dir, "model_dynamo.onnx"), dynamo=True)
    np.savez(os.path.join(out_dir, "calib.npz"), x=data.x_calib, y=data.y_calib)
    np.savez(os.path.join(out_dir, "test.npz"), x=data.x_test, y=data.y_test)
    return metric(name, model, data)
