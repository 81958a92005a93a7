"""LeNet shapes for Deep Compression (Han et al., ICLR 2016, Table 1: LeNet-300-100 and
LeNet-5 on MNIST), trained here on scikit-learn's 8x8 digits (no downloads), for
`make bench`'s compression tables.

    lenet300    64-300-100-10 MLP, ReLU (LeNet-300-100 with the digits' 64 pixels in)
    lenet5      Caffe's LeNet-5: Conv 20 5x5, max pool, Conv 50 5x5, max pool, Dense 500,
                ReLU, Dense 10 (padding 2, so the 8x8 digits keep a 2x2 map at the end)

`build(name, out_dir)` writes model.onnx, calib.npz (256 samples) and test.npz ("x",
labels "y") and returns the float test accuracy.
"""
from __future__ import annotations

import os

import numpy as np
import torch
from torch import nn

from zoo import accuracy, digits, train

FILES = ("model.onnx", "calib.npz", "test.npz")


def lenet300() -> nn.Module:
    return nn.Sequential(nn.Linear(64, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(),
                         nn.Linear(100, 10))


def lenet5() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 20, 5, padding=2), nn.MaxPool2d(2),
                         nn.Conv2d(20, 50, 5, padding=2), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(200, 500), nn.ReLU(), nn.Linear(500, 10))


LENET = {"lenet300": (lenet300, False, 40), "lenet5": (lenet5, True, 40)}


def build(name: str, out_dir: str) -> float:
    from fxq.torch_export import export_onnx

    make, image, epochs = LENET[name]
    torch.manual_seed(3)
    data = digits(image=image)
    model = make()
    train(model, data, epochs, seed=3)
    os.makedirs(out_dir, exist_ok=True)
    export_onnx(model, torch.from_numpy(data.x_calib[:2]), os.path.join(out_dir, "model.onnx"))
    np.savez(os.path.join(out_dir, "calib.npz"), x=data.x_calib, y=data.y_calib)
    np.savez(os.path.join(out_dir, "test.npz"), x=data.x_test, y=data.y_test)
    return accuracy(model, data.x_test, data.y_test)
