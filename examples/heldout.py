"""Held-out networks: architectures, seeds and data the search was not developed against,
for measuring accuracy (`make bench`, benchmarks/accuracy.py). Trained in seconds on data
that ships with scikit-learn or is generated here (no downloads).

    resnet_bn    Conv-BN-ReLU stem, a two-conv residual branch with BN, Add, ReLU, global
                 average pooling, Dense (digits)
    mbv2         MobileNetV2-style: a ReLU6 stem and two inverted residual blocks (1x1
                 expansion, ReLU6, depthwise 3x3, ReLU6, linear 1x1 projection, Add) (digits)
    mlp_s1       the 64-64-32-32-10 MLP, trained from another seed, logits out (digits)
    jet          the jet-tagger shape 16-64-32-32-5 with softmax, on a generated 16-feature,
                 5-class task (scikit-learn's make_classification)
    random_K     random architectures (K = 0, 1, 2, 3): an MLP or a CNN, its depth, widths,
                 BatchNorm, activation (ReLU, ReLU6, LeakyReLU) and pooling drawn from seed K

`build(name, out_dir)` writes model.onnx (TorchScript exporter), calib.npz and test.npz
("x", labels "y") and returns the float test accuracy.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from zoo import Dataset, _split, accuracy, digits, train

RANDOM_ARCHITECTURES = 4
FILES = ("model.onnx", "calib.npz", "test.npz")     # what build() writes


def jet_like() -> Dataset:
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=3000, n_features=16, n_informative=10,
                               n_redundant=4, n_classes=5, n_clusters_per_class=2,
                               class_sep=1.2, random_state=7)
    return _split(x, y, np.random.default_rng(7))


class ResidualBN(nn.Module):
    def __init__(self, c: int = 16) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, c, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(c), nn.ReLU())
        self.branch = nn.Sequential(nn.Conv2d(c, c, 3, padding=1, bias=False),
                                    nn.BatchNorm2d(c), nn.ReLU(),
                                    nn.Conv2d(c, c, 3, padding=1, bias=False),
                                    nn.BatchNorm2d(c))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        return self.head(torch.relu(h + self.branch(h)))


class InvertedResidual(nn.Module):
    def __init__(self, c: int, expand: int) -> None:
        super().__init__()
        e = c * expand
        self.body = nn.Sequential(
            nn.Conv2d(c, e, 1, bias=False), nn.BatchNorm2d(e), nn.ReLU6(),
            nn.Conv2d(e, e, 3, padding=1, groups=e, bias=False), nn.BatchNorm2d(e), nn.ReLU6(),
            nn.Conv2d(e, c, 1, bias=False), nn.BatchNorm2d(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def mbv2() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8),
                         nn.ReLU6(), InvertedResidual(8, 4), InvertedResidual(8, 4),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))


def mlp_logits() -> nn.Module:
    return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(),
                         nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 10))


def jet_mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(),
                         nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 5), nn.Softmax(dim=1))


ACTIVATIONS = (nn.ReLU, nn.ReLU6, lambda: nn.LeakyReLU(0.1))


def random_architecture(seed: int) -> tuple[nn.Module, bool]:
    """(model, takes images) drawn from `seed`: an MLP on the 64 flat pixels or a CNN on the
    8x8 image, 2-4 layers of random widths, BatchNorm or not, one activation kind."""
    rng = np.random.default_rng(1000 + seed)
    act = ACTIVATIONS[int(rng.integers(len(ACTIVATIONS)))]
    bn = bool(rng.integers(2))
    if seed % 2 == 0:
        layers: list[nn.Module] = []
        width = 64
        for _ in range(int(rng.integers(2, 5))):
            out = int(rng.choice([16, 24, 32, 48, 64, 96]))
            layers += [nn.Linear(width, out)] + ([nn.BatchNorm1d(out)] if bn else []) + [act()]
            width = out
        return nn.Sequential(*layers, nn.Linear(width, 10)), False
    layers, c, size = [], 1, 8
    for i in range(int(rng.integers(2, 4))):
        out = int(rng.choice([8, 12, 16, 24]))
        layers += [nn.Conv2d(c, out, 3, padding=1)] + ([nn.BatchNorm2d(out)] if bn else []) \
            + [act()]
        if size > 2 and rng.integers(2):
            layers.append(nn.MaxPool2d(2) if rng.integers(2) else nn.AvgPool2d(2))
            size //= 2
        c = out
    head = [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 10)] if rng.integers(2) else \
        [nn.Flatten(), nn.Linear(c * size * size, 10)]
    return nn.Sequential(*layers, *head), True


@dataclass(frozen=True)
class HeldOut:
    make: Callable[[], nn.Module]
    data: Callable[[], Dataset]
    epochs: int
    seed: int = 1


def _random(seed: int) -> HeldOut:
    images = random_architecture(seed)[1]
    return HeldOut(lambda: random_architecture(seed)[0], lambda: digits(image=images),
                   epochs=40, seed=seed + 10)


HELDOUT: dict[str, HeldOut] = {
    "resnet_bn": HeldOut(ResidualBN, lambda: digits(image=True), epochs=40),
    "mbv2": HeldOut(mbv2, lambda: digits(image=True), epochs=60),
    "mlp_s1": HeldOut(mlp_logits, lambda: digits(image=False), epochs=60),
    "jet": HeldOut(jet_mlp, jet_like, epochs=60),
    **{f"random_{k}": _random(k) for k in range(RANDOM_ARCHITECTURES)},
}


def build(name: str, out_dir: str) -> float:
    from fxq.torch_export import export_onnx

    entry = HELDOUT[name]
    torch.manual_seed(entry.seed)
    data = entry.data()
    model = entry.make()
    train(model, data, entry.epochs, seed=entry.seed)
    os.makedirs(out_dir, exist_ok=True)
    export_onnx(model, torch.from_numpy(data.x_calib[:2]), os.path.join(out_dir, "model.onnx"))
    np.savez(os.path.join(out_dir, "calib.npz"), x=data.x_calib, y=data.y_calib)
    np.savez(os.path.join(out_dir, "test.npz"), x=data.x_test, y=data.y_test)
    return accuracy(model, data.x_test, data.y_test)
