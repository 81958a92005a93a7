"""fxq.from_torch: export through torch.onnx, load, and match torch's own output."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import fxq


class Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(2, 4, 3, padding=1)
        self.b = nn.Conv2d(2, 4, 1)
        self.bn = nn.BatchNorm2d(8)
        self.head = nn.Linear(8 * 3 * 3, 5)

    def forward(self, x):
        h = torch.cat([torch.relu(self.a(x)), nn.functional.leaky_relu(self.b(x), 0.1)], 1)
        h = nn.functional.max_pool2d(self.bn(h), 2)
        return torch.sigmoid(self.head(torch.flatten(h, 1)))


class ViewBySize(nn.Module):
    """The flatten of older PyTorch code: h.view(h.size(0), -1), which TorchScript exports
    as Shape, Gather, Unsqueeze, Concat and Reshape; then a reshape whose sizes are read
    from the tensor (x.size(1) * 2)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3)
        self.head = nn.Linear(4 * 4 * 4, 6)

    def forward(self, x):
        h = torch.relu(self.conv(x))
        h = self.head(h.view(h.size(0), -1))
        return h.reshape(h.size(0), h.size(1) // 3, -1).sum(dim=2)


class SqueezeExcite(nn.Module):
    """A squeeze-and-excitation block: channel means -> Dense -> ReLU -> Dense -> sigmoid,
    unsqueezed (w[:, :, None, None]) and multiplied into the feature map."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.squeeze, self.excite = nn.Linear(8, 4), nn.Linear(4, 8)
        self.head = nn.Linear(8, 5)

    def forward(self, x):
        h = torch.relu(self.conv(x))
        w = torch.sigmoid(self.excite(torch.relu(self.squeeze(h.mean((2, 3))))))
        h = h * w[:, :, None, None]
        return self.head(h.mean((2, 3)).unsqueeze(-1).squeeze(2))


@pytest.mark.parametrize("module, shape", [
    (ViewBySize(), (2, 6, 6)),
    (SqueezeExcite(), (3, 5, 5)),
    (nn.Sequential(nn.Linear(10, 8), nn.ReLU6(), nn.Linear(8, 3), nn.Softmax(dim=1)), (10,)),
    (Branchy(), (2, 6, 6)),
    (nn.Sequential(nn.Conv1d(3, 4, 3, stride=2), nn.Tanh(), nn.AvgPool1d(2),
                   nn.Flatten(), nn.Linear(16, 2)), (3, 20)),
])
@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
def test_from_torch_matches_torch(module, shape, dynamo):
    torch.manual_seed(0)
    for p in module.parameters():
        nn.init.normal_(p, std=0.5)
    module.eval()
    x = torch.randn((6,) + shape)
    graph = fxq.from_torch(module, x[:1], dynamo=dynamo)
    with torch.no_grad():
        want = module(x).numpy()
    got = graph.run(x.numpy())
    assert np.max(np.abs(got - want)) <= 1e-5 * max(1.0, float(np.abs(want).max()))


def test_from_torch_export_failure_is_a_clear_error():
    class Bad(nn.Module):
        def forward(self, x):
            return torch.linalg.svd(x)[0]       # no path to a supported graph

    with pytest.raises(fxq.FxqError):
        fxq.from_torch(Bad(), torch.randn(1, 3, 3))
