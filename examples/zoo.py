"""The example zoo: small real models trained in seconds, exported to ONNX with data.

Every model trains on data that ships with scikit-learn or is generated here (no downloads):

    mlp       64-64-32-32-10 MLP with softmax, shaped like hls4ml's jet tagger (digits)
    cnn_bn    two Conv+BatchNorm+ReLU+MaxPool stages and a Dense head (digits)
    resnet    a residual CNN: skip Add, GlobalAveragePool (digits)
    dwsep     depthwise-separable CNN with AveragePool (digits)
    conv1d    1D CNN with MaxPool and a Tanh head on a generated waveform task

Each model directory holds model.onnx (TorchScript exporter, opset 17), model_dynamo.onnx
(the same trained model through torch.export, opset 18+), calib.npz and test.npz (arrays "x"
and labels "y").
`build(name, out_dir)` is deterministic for a given torch build; `python examples/build_zoo.py`
builds all of them, skipping the ones already built from the same source.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

SEED = 0


@dataclass(frozen=True)
class Dataset:
    x_train: np.ndarray
    y_train: np.ndarray
    x_calib: np.ndarray
    y_calib: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def _split(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> Dataset:
    order = rng.permutation(len(x))
    x, y = x[order].astype(np.float32), y[order].astype(np.int64)
    n_train = int(0.7 * len(x))
    n_calib = min(256, n_train)
    return Dataset(x[:n_train], y[:n_train], x[:n_calib], y[:n_calib],
                   x[n_train:], y[n_train:])


def digits(image: bool) -> Dataset:
    from sklearn.datasets import load_digits

    data = load_digits()
    x = data.images / 16.0 if image else data.data / 16.0
    if image:
        x = x[:, None, :, :]                                 # N, 1, 8, 8
    return _split(x, data.target, np.random.default_rng(SEED))


def waveforms(n: int = 1800, length: int = 64) -> Dataset:
    """Sine / square / sawtooth with random frequency, phase, amplitude and noise."""
    rng = np.random.default_rng(SEED)
    labels = rng.integers(0, 3, n)
    t = np.arange(length)[None, :]
    freq = rng.uniform(1.5, 5.0, (n, 1)) / length
    phase = rng.uniform(0, 1, (n, 1))
    cycles = freq * t + phase
    sine = np.sin(2 * np.pi * cycles)
    square = np.sign(sine)
    saw = 2 * (cycles - np.floor(cycles + 0.5))
    x = np.choose(labels[:, None], [sine, square, saw]) * rng.uniform(0.5, 1.5, (n, 1))
    x = x + rng.normal(0, 0.2, x.shape)
    return _split(x[:, None, :], labels, rng)


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(),
                         nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 10), nn.Softmax(dim=1))


def cnn_bn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(16 * 2 * 2, 10))


class ResidualCNN(nn.Module):
    def __init__(self, channels: int = 16) -> None:
        super().__init__()
        c = channels
        self.stem = nn.Sequential(nn.Conv2d(1, c, 3, padding=1), nn.ReLU())
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        r = self.conv2(torch.relu(self.conv1(h)))
        return self.head(torch.relu(h + r))


def dwsep() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.Conv2d(8, 16, 1), nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Conv2d(16, 16, 3, padding=1, groups=16), nn.Conv2d(16, 16, 1), nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(16 * 2 * 2, 10))


def conv1d() -> nn.Module:
    return nn.Sequential(
        nn.Conv1d(1, 8, 5, padding=2), nn.ReLU(), nn.MaxPool1d(2),
        nn.Conv1d(8, 16, 5, padding=2), nn.ReLU(), nn.MaxPool1d(2),
        nn.Flatten(), nn.Linear(16 * 16, 16), nn.Tanh(), nn.Linear(16, 3))


@dataclass(frozen=True)
class ZooEntry:
    make: Callable[[], nn.Module]
    data: Callable[[], Dataset]
    epochs: int
    fold_constants: bool = True     # False keeps BatchNorm nodes in the ONNX file


ZOO: dict[str, ZooEntry] = {
    "mlp": ZooEntry(mlp, lambda: digits(image=False), epochs=60),
    "cnn_bn": ZooEntry(cnn_bn, lambda: digits(image=True), epochs=40, fold_constants=False),
    "resnet": ZooEntry(ResidualCNN, lambda: digits(image=True), epochs=40),
    "dwsep": ZooEntry(dwsep, lambda: digits(image=True), epochs=60),
    "conv1d": ZooEntry(conv1d, waveforms, epochs=40),
}


def train(model: nn.Module, data: Dataset, epochs: int, reconstruct: bool = False,
          seed: int = SEED) -> None:
    """Adam, minibatches of 64: on cross-entropy (a trailing Softmax is skipped in
    training), or with `reconstruct` on the mean squared error of output against input."""
    torch.manual_seed(seed)
    logits_model = model[:-1] if isinstance(model, nn.Sequential) and \
        isinstance(model[-1], nn.Softmax) else model
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=gen).split(64):
            opt.zero_grad()
            out = logits_model(x[idx])
            loss = nn.functional.mse_loss(out, x[idx]) if reconstruct else \
                nn.functional.cross_entropy(out, y[idx])
            loss.backward()
            opt.step()
    model.eval()


def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    with torch.no_grad():
        return float((model(torch.from_numpy(x)).argmax(1).numpy() == y).mean())


def build(name: str, out_dir: str) -> float:
    """Train zoo model `name`, write it with its data to out_dir; returns test accuracy."""
    from fxq.torch_export import export_onnx

    entry = ZOO[name]
    torch.manual_seed(SEED)
    data = entry.data()
    model = entry.make()
    train(model, data, entry.epochs)
    os.makedirs(out_dir, exist_ok=True)
    example = torch.from_numpy(data.x_calib[:2])
    export_onnx(model, example, os.path.join(out_dir, "model.onnx"),
                fold_constants=entry.fold_constants)
    # the same trained model through torch's default exporter (torch.export, opset 18+)
    export_onnx(model, example, os.path.join(out_dir, "model_dynamo.onnx"), dynamo=True)
    np.savez(os.path.join(out_dir, "calib.npz"), x=data.x_calib, y=data.y_calib)
    np.savez(os.path.join(out_dir, "test.npz"), x=data.x_test, y=data.y_test)
    return accuracy(model, data.x_test, data.y_test)
