"""The float reference (fxq.reference): a graph's result depends on its parameters' values,
never on their memory layout or dtype, so transforms that keep the float function (an
exact rescaling, an ONNX round trip) can be held to it bit for bit on any BLAS."""
from __future__ import annotations

import os

import numpy as np
import pytest

import fxq
from random_graphs import BUILDERS


def _relaid(graph, order: str, dtype):
    """The same graph with every parameter copied into `order` ('F': transposed storage)."""
    params = {k: np.array(v, dtype=dtype, order=order) for k, v in graph.params.items()}
    return graph.rebuild(graph.nodes, params=params)


def _graphs(zoo_dir):
    for name in ("mlp", "cnn_bn", "resnet", "dwsep", "conv1d"):
        graph = fxq.load(os.path.join(zoo_dir, name, "model.onnx"))
        yield name, graph, np.load(os.path.join(zoo_dir, name, "calib.npz"))["x"][:64]
    for kind in sorted(BUILDERS):
        q, x = BUILDERS[kind](np.random.default_rng(0), "io_parallel")
        yield kind, q.graph, x


@pytest.mark.parametrize("batch", [1, 3, 64])
def test_the_result_does_not_depend_on_parameter_layout(zoo_dir, batch):
    # batch 1 is a matrix-vector product, where OpenBLAS's kernels for a transposed and a
    # plain matrix sum in different orders even on this machine's Haswell kernels
    for name, graph, x in _graphs(zoo_dir):
        x = x[:batch]
        want = graph.run(x)
        for order in ("C", "F"):
            got = _relaid(graph, order, np.float64).run(x)
            np.testing.assert_array_equal(got, want, err_msg=f"{name} {order}")
