"""Parameters stored as a codebook plus indices (fxq.encoding), made by the share transform:
the op kernels are untouched, the simulation is bit-exact against the C simulation, and
fxq_model.json keeps the encoding."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

import fxq
from fxq.encoding import Codebook
from fxq.hls import verify
from fxq.model_file import from_json, to_json
from fxq.passes import run_pipeline
from fxq.transforms.prune import MagnitudePrune
from fxq.transforms.share import ShareWeights, kmeans_codebook
from helpers import assert_exact


@pytest.fixture(scope="module")
def shared(zoo_dir):
    graph = fxq.load(os.path.join(zoo_dir, "mlp", "model.onnx"))
    pruned, _ = run_pipeline(graph, [MagnitudePrune(0.5)])
    out, changes = run_pipeline(pruned, [ShareWeights(8)])
    return graph, pruned, out, changes


def test_sharing_gives_every_layer_a_codebook_and_keeps_pruned_zeros(shared):
    graph, pruned, out, changes = shared
    dense = [n for n in graph.nodes if n.op is fxq.Op.DENSE]
    assert len(changes) == len(dense)
    for node in dense:
        weight = dict(out.param_inputs(node))["weight"]
        book = out.encodings[weight]
        assert isinstance(book, Codebook) and book.values.size <= 8
        np.testing.assert_array_equal(book.dense(), out.params[weight])
        np.testing.assert_array_equal(out.params[weight] == 0, pruned.params[weight] == 0)
        assert book.storage_bits(8) == book.values.size * 8 + book.indices.size * 3
    assert run_pipeline(out, [ShareWeights(8)])[1] == []             # a fixed point


def test_kmeans_codebook_of_few_values_is_exact():
    w = np.array([[0.5, -0.25], [0.5, 0.0]])
    book = kmeans_codebook(w, 4)
    np.testing.assert_array_equal(book.dense(), w)
    assert sorted(book.values) == [-0.25, 0.0, 0.5]


def test_an_encoded_graph_simulates_bit_for_bit_and_round_trips(shared, zoo_dir, hls_dir):
    _, _, out, _ = shared
    x = np.load(os.path.join(zoo_dir, "mlp", "calib.npz"))["x"][:64]
    q = fxq.quantize(out, calib=x, bits=8)
    assert_exact(verify(q, hls_dir, x, overwrite=True))
    doc = json.loads(json.dumps(to_json(q)))
    assert all("encoding" in p for n, p in doc["graph"]["params"].items()
               if n in out.encodings)
    back = from_json(doc)
    assert set(back.graph.encodings) == set(out.encodings)
    np.testing.assert_array_equal(back.simulate(x, raw=True), q.simulate(x, raw=True))


def test_an_encoding_that_does_not_reproduce_its_values_is_refused(shared):
    _, _, out, _ = shared
    name, book = next(iter(out.encodings.items()))
    with pytest.raises(ValueError, match="encoding of .* does not reproduce its values"):
        out.rebuild(out.nodes, encodings={name: book.with_values(book.values + 1)})
    # a new value for the parameter drops its old encoding
    changed = out.rebuild(out.nodes, params={name: out.params[name] * 2})
    assert name not in changed.encodings
