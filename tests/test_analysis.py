"""The dynamic fixed-point search: what it chooses and why, pinned on small graphs and the zoo."""
from __future__ import annotations

import os
from dataclasses import replace

import numpy as np
import pytest

import fxq
from fxq.analysis import BitConfig, ConfigError, load_config, quantize, quantize_graph
from fxq.analysis.search import best_param_type, frac_to_hold
from fxq.fixed import FixedType, Overflow, Rounding, quantize as to_raw, to_float
from fxq.ir import Graph, Node, Op, Tensor
from fxq.quantized import QuantizedGraph
from zoo import ZOO


def _dense_chain(rng, sizes, scale=1.0, relu=False) -> Graph:
    nodes, tensors, params = [], {"x": Tensor("x", (sizes[0],))}, {}
    x = "x"
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        params[f"w{i}"] = rng.normal(0, scale / np.sqrt(a), (a, b))
        params[f"b{i}"] = rng.normal(0, 0.1, b)
        y = f"d{i}"
        nodes.append(Node(f"dense{i}", Op.DENSE, (x, f"w{i}", f"b{i}"), (y,)))
        tensors[y] = Tensor(y, (b,))
        x = y
        if relu:
            nodes.append(Node(f"relu{i}", Op.RELU, (x,), (f"r{i}",)))
            tensors[f"r{i}"] = Tensor(f"r{i}", (b,))
            x = f"r{i}"
    return Graph.build("chain", ["x"], [x], nodes, tensors, params)


def test_frac_to_hold_is_the_finest_format_that_holds_the_value():
    for width in (4, 8, 16):
        for m in (0.3, 1.0, 5.9, 6.0, 100.0):
            f = frac_to_hold(m, width, True)
            assert m <= FixedType(width, f).max
            assert m > FixedType(width, f + 1).max


def test_weight_format_minimizes_the_summed_absolute_error():
    rng = np.random.default_rng(0)
    w = rng.laplace(0, 0.3, 500)
    chosen = best_param_type(w, 6)

    def l1(frac):
        t = FixedType(6, frac, True, Rounding.RND, Overflow.SAT)
        return np.abs(to_float(to_raw(w, t), t) - w).sum()

    assert l1(chosen.frac) == min(l1(f) for f in range(-4, 16))


def test_a_layer_whose_range_needs_three_integer_bits_gets_them():
    """Outputs spread evenly over [-6, 6]: 3 integer bits plus the sign."""
    w = np.array([[6.0]])
    g = Graph.build("one", ["x"], ["y"], [Node("d", Op.DENSE, ("x", "w"), ("y",))],
                    {"x": Tensor("x", (1,)), "y": Tensor("y", (1,))}, {"w": w})
    x = np.linspace(-1, 1, 401)[:, None]
    q = quantize(g, x, bits=8)
    assert q.types["y"].integer == 4            # ap_fixed<8,4>: 3 integer bits and a sign
    assert q.types["x"].integer == 1            # the input [-1, 1] needs no integer bit


def test_the_greedy_step_sees_the_errors_of_earlier_layers():
    """The error each candidate of layer 2 was judged by is the error of layer 2 in the final
    fixed-point model, whose input is layer 1 *in fixed point*: coarse enough here that
    judging layer 2 on float inputs would give a different number."""
    rng = np.random.default_rng(1)
    g = _dense_chain(rng, [8, 8, 8])
    x = rng.normal(0, 1, (300, 8))
    result = quantize_graph(g, x, BitConfig(weight_bits=4, act_bits=4), refine=False)
    q = result.q
    choice = next(c for c in result.choices if c.node == "d1")
    fixed = to_float(q.evaluate(x)["d1"], q.types["d1"])
    floats = g.run(x)
    assert choice.errors[choice.frac] == pytest.approx(np.mean(np.abs(fixed - floats)), rel=1e-12)
    assert choice.errors[choice.frac] == min(choice.errors.values())
    # with layer 1 exact (float inputs) layer 2's error would be different
    layer2_alone = quantize_graph(
        Graph.build("l2", ["d0"], ["d1"], [g.nodes[1]], g.tensors, g.params),
        {"d0": fxq.reference.evaluate(g, x)["d0"]}, BitConfig(weight_bits=4, act_bits=4),
        refine=False)
    alone = next(c for c in layer2_alone.choices if c.node == "d1")
    assert alone.errors.get(choice.frac) != choice.errors[choice.frac]


@pytest.mark.parametrize("name", ["mlp", "cnn_bn", "resnet"])
def test_every_candidate_is_scored_by_its_error_in_the_final_model(zoo_dir, name):
    """Each candidate fractional length of each node was judged by the mean error of that
    node's output in the final fixed-point model with only that node's result type
    changed (the search computes and scores 64 samples at a time: here 150 samples, three
    blocks), and the winner is the first smallest. A tensor read only by a ReLU is scored
    after the ReLU (values it discards cost nothing). (The greedy pass alone: the
    refinement's moves are scored at the output, tests/test_refine.py.)"""
    graph = fxq.load(os.path.join(zoo_dir, name, "model.onnx"))
    x = np.load(os.path.join(zoo_dir, name, "calib.npz"))["x"][:150]
    result = quantize_graph(graph, x, BitConfig(weight_bits=6, act_bits=6), refine=False)
    q, floats = result.q, fxq.reference.evaluate(graph, x)
    position = {n.output: i for i, n in enumerate(graph.nodes)}
    for choice in result.choices:
        if choice.node not in position:
            continue                                     # a graph input
        upto = graph.nodes[:position[choice.node] + 1]   # the graph cut after the node
        used = {name for n in upto for name in n.inputs}
        # (with the design's parameters: its biases are corrected, the float model's are not)
        cut = Graph.build("cut", list(graph.inputs), [choice.node], list(upto), graph.tensors,
                          {k: v for k, v in q.graph.params.items() if k in used})
        for frac, error in choice.errors.items():
            t = replace(q.types[choice.node], frac=frac)
            layers = {n.name: q.layers[n.name] for n in upto}
            layers[upto[-1].name] = replace(layers[upto[-1].name], result=t)
            alt = QuantizedGraph(cut, q.inputs, layers, q.io_type)
            raw = alt.evaluate(x, keep=[choice.node])[choice.node]
            readers = graph.consumers(choice.node)
            after = (lambda v: np.maximum(v, 0.0)) if len(readers) == 1 and \
                readers[0].op is Op.RELU else (lambda v: v)
            want = np.mean(np.abs(after(to_float(raw, t)) - after(floats[choice.node])))
            assert error == pytest.approx(want, rel=1e-12, abs=1e-15), (choice.node, frac)
        best = min(choice.errors.values())
        assert choice.frac == next(f for f, e in choice.errors.items() if e == best)


def test_static_gives_every_feature_map_one_fractional_length():
    rng = np.random.default_rng(2)
    g = _dense_chain(rng, [6, 12, 12, 4], scale=3.0)
    x = rng.normal(0, 1, (200, 6))
    static = quantize(g, x, bits=8, method="static")
    dynamic = quantize(g, x, bits=8)
    maps = [n.output for n in g.nodes]
    assert len({static.types[n].frac for n in maps}) == 1
    assert len({dynamic.types[n].frac for n in maps}) > 1
    weights = [n.inputs[1] for n in g.nodes]
    assert len({static.types[w].frac for w in weights}) == 1


def test_accumulators_cannot_overflow_for_any_input_of_the_input_type():
    rng = np.random.default_rng(3)
    g = _dense_chain(rng, [16, 8], scale=4.0)
    q = quantize(g, rng.normal(0, 1, (100, 16)), bits=8)
    node = g.nodes[0]
    layer, x_t = q.layers[node.name], q.types["x"]
    w = q.params[node.inputs[1]].astype(object)
    b = q.params[node.inputs[2]].astype(object)
    shift = layer.accum.frac - (x_t.frac + layer.param("weight").frac)
    b_shift = layer.accum.frac - layer.param("bias").frac
    assert layer.param("bias").frac == layer.accum.frac                 # bias at accum resolution
    for extreme in (x_t.raw_min, x_t.raw_max):
        # the worst case: every input at an extreme, with the sign of its weight
        for o in range(w.shape[1]):
            for sign in (1, -1):
                xs = [extreme if (sign * wk >= 0) == (extreme >= 0) else 0 for wk in w[:, o]]
                total = sum(xk * wk for xk, wk in zip(xs, w[:, o])) * 2 ** shift \
                    + b[o] * 2 ** b_shift
                assert layer.accum.raw_min <= total <= layer.accum.raw_max


def test_relu_outputs_are_unsigned_and_padded_max_pool_inputs_stay_signed():
    rng = np.random.default_rng(4)
    g = _dense_chain(rng, [4, 6, 3], relu=True)
    x = rng.normal(0, 1, (50, 4))
    q = quantize(g, x, bits=8)
    # a Dense read only by a ReLU is unsigned too: saturating its negative sums to 0 is
    # what the ReLU does with them
    assert not q.types["r0"].signed and not q.types["d0"].signed
    wrapping = quantize(g, x, config=BitConfig(overflow=Overflow.WRAP))
    assert wrapping.types["d0"].signed
    # hls4ml pads max pooling with the sign bit set: its input must stay signed
    nodes = [Node("conv", Op.CONV, ("x", "w"), ("c",), {"strides": (1, 1), "pads": (0, 0, 0, 0),
                                                         "groups": 1}),
             Node("relu", Op.RELU, ("c",), ("r",)),
             Node("pool", Op.MAX_POOL, ("r",), ("p",), {"kernel": (2, 2), "strides": (2, 2),
                                                        "pads": (1, 1, 1, 1)})]
    tensors = {"x": Tensor("x", (1, 4, 4)), "c": Tensor("c", (2, 4, 4)),
               "r": Tensor("r", (2, 4, 4)), "p": Tensor("p", (2, 3, 3))}
    g = Graph.build("pool", ["x"], ["p"], nodes, tensors, {"w": rng.normal(0, 1, (2, 1, 1, 1))})
    q = quantize(g, rng.normal(0, 1, (20, 1, 4, 4)), bits=8)
    assert q.types["r"].signed


def test_widths_per_kind_and_per_layer():
    rng = np.random.default_rng(5)
    g = _dense_chain(rng, [4, 6, 3], relu=True)
    config = BitConfig(weight_bits=8, act_bits=8, kinds={"dense": {"weight_bits": 4}},
                       layers={"relu1": {"act_bits": 12}})
    q = quantize(g, rng.normal(0, 1, (50, 4)), config=config)
    assert q.types["w0"].width == 4 and q.types["w1"].width == 4
    assert q.types["r1"].width == 12 and q.types["r0"].width == 8
    q = quantize(g, rng.normal(0, 1, (50, 4)), config=config, weight_bits=6)
    assert q.types["w0"].width == 4                           # the kind setting is more specific


def test_config_file(tmp_path):
    path = tmp_path / "fxq.toml"
    path.write_text('bits = 6\nobjective = "l2"\n[kind.conv]\nweight_bits = 8\n'
                    '[layer."/0/Gemm"]\nact_bits = 10\naccum_drop = 0\n')
    c = load_config(str(path))
    assert (c.weight_bits, c.act_bits, c.objective) == (6, 6, "l2")
    assert c.kinds["conv"]["weight_bits"] == 8 and c.layers["/0/Gemm"]["act_bits"] == 10
    assert c.layers["/0/Gemm"]["accum_drop"] == 0


def test_dropped_accumulator_bits_truncate_each_product():
    """accum_drop = d: the accumulator d bits coarser than the exact products, every
    product floored onto its grid (hls4ml's assignment to an AP_TRN accum_t), and still
    no overflow for any input of the declared type."""
    rng = np.random.default_rng(5)
    g = _dense_chain(rng, [12, 6], scale=3.0)
    x = rng.normal(0, 1, (200, 12))
    exact = quantize(g, x, bits=8)
    node = g.nodes[0]
    for drop in (1, 4):
        q = quantize(g, x, config=BitConfig(layers={node.name: {"accum_drop": drop}}))
        layer, x_t = q.layers[node.name], q.types["x"]
        w_t = layer.param("weight")
        assert layer.accum.frac == x_t.frac + w_t.frac - drop
        assert layer.accum.frac < exact.layers[node.name].accum.frac
        xr = to_raw(x[:50], x_t).astype(object)
        w = q.params[node.inputs[1]].astype(object)
        b = q.params[node.inputs[2]].astype(object)
        b_shift = layer.accum.frac - layer.param("bias").frac
        sums = [[sum((xk * wk) >> drop for xk, wk in zip(row, w[:, o])) + (b[o] << b_shift)
                 for o in range(w.shape[1])] for row in xr]
        for row in sums:
            assert all(layer.accum.raw_min <= s <= layer.accum.raw_max for s in row)
        # the result: those sums converted to the output's type, in both engines
        expected = to_raw(np.array(sums, dtype=np.float64) * 2.0 ** -layer.accum.frac,
                          q.types[node.output])
        for engine in ("numpy", "native"):
            np.testing.assert_array_equal(q.simulate(x[:50], raw=True, engine=engine),
                                          expected)


@pytest.mark.parametrize("text, message", [
    ("bits = 8\nwidth = 3\n", r"fxq.toml:2: width: unknown key"),
    ("bits = 0\n", r"fxq.toml:1: bits: 0 is not a bit width"),
    ("weight_bits = 65\n", r"fxq.toml:1: weight_bits: 65 is not a bit width"),
    ("[kind.lstm]\nweight_bits = 4\n", r"fxq.toml:1: lstm: unknown layer kind"),
    ("[kind.conv]\nweight_bits = 4\nact = 3\n", r"fxq.toml:3: act: unknown key in \[kind.conv\]"),
    ('objective = "l3"\n', r"fxq.toml:1: objective: 'l3' is not one of"),
    ("bits = \n", r"not valid TOML"),
    ("[kind.dense]\naccum_drop = -1\n", r"fxq.toml:2: accum_drop: -1 is not a number of bits"),
    ("[kind.pool]\naccum_drop = 2\n", r"kind 'pool': accum_drop applies to the accumulators of "
     r"dense and conv layers only"),
])
def test_config_file_errors_name_the_key_and_line(tmp_path, text, message):
    path = tmp_path / "fxq.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(str(path))


@pytest.mark.parametrize("bad", [0, -3, 65, 2.5])
def test_bit_widths_out_of_range_are_refused(bad):
    with pytest.raises(ConfigError, match="bit width"):
        BitConfig.of(bits=bad)


def test_accum_drop_on_a_layer_without_an_accumulator_is_refused():
    rng = np.random.default_rng(6)
    g = _dense_chain(rng, [4, 3], relu=True)
    with pytest.raises(ConfigError, match="'relu0' \\(RELU\\): accum_drop applies"):
        quantize(g, rng.normal(0, 1, (10, 4)),
                 config=BitConfig(layers={"relu0": {"accum_drop": 2}}))


def test_unknown_layer_in_the_config_is_refused():
    rng = np.random.default_rng(6)
    g = _dense_chain(rng, [4, 3])
    with pytest.raises(ConfigError, match="'nope' in the bit configuration is not a node"):
        quantize(g, rng.normal(0, 1, (10, 4)), config=BitConfig(layers={"nope": {"act_bits": 4}}))


@pytest.mark.parametrize("name", list(ZOO))
def test_eight_bit_dynamic_keeps_zoo_accuracy_within_one_point(zoo_dir, name):
    g = fxq.load(os.path.join(zoo_dir, name, "model.onnx"))
    calib = np.load(os.path.join(zoo_dir, name, "calib.npz"))["x"]
    test = np.load(os.path.join(zoo_dir, name, "test.npz"))
    float_acc = np.mean(g.run(test["x"]).argmax(1) == test["y"])
    fixed_acc = np.mean(quantize(g, calib, bits=8).simulate(test["x"]).argmax(1) == test["y"])
    assert fixed_acc >= float_acc - 0.01


@pytest.mark.parametrize("bits", [4, 6, 8])
@pytest.mark.parametrize("name", ["mlp", "cnn_bn", "resnet", "dwsep", "conv1d"])
def test_graph_outputs_hold_their_calibrated_range(zoo_dir, name, bits):
    """A design's output is never clipped on the calibration data (regression outputs and
    anomaly scores are values, not only an argmax)."""
    graph = fxq.load(os.path.join(zoo_dir, name, "model.onnx"))
    x = np.load(os.path.join(zoo_dir, name, "calib.npz"))["x"]
    q = fxq.quantize(graph, calib=x, bits=bits)
    y = graph.run(x)
    t = q.types[graph.outputs[0]]
    assert np.max(y) <= t.max and np.min(y) >= t.min


def test_class_scores_may_saturate_their_largest_values():
    """task="classify": the outputs are class scores read by an argmax, so a type finer
    than their calibrated range is a candidate like any inner tensor's. Scores mostly in
    +-1 with a few near 7 take a finer type than the range type, which holds them all, and
    clip the outliers; without the task the output holds its range. The search refuses a
    task it does not know."""
    rng = np.random.default_rng(4)
    g = _dense_chain(rng, [8, 5], scale=0.3)
    x = rng.uniform(-1, 1, (300, 8))
    x[:3] *= 25                                     # three samples with scores near 7
    y = g.run(x)
    assert np.abs(y[3:]).max() < 1.5 < np.abs(y[:3]).max()
    held = quantize(g, x, bits=6).types[g.outputs[0]]
    scores = quantize(g, x, bits=6, task="classify").types[g.outputs[0]]
    assert held.min <= y.min() and y.max() <= held.max
    assert scores.frac > held.frac and scores.max < np.abs(y).max()
    assert quantize(g, x, bits=6, task="regression").types[g.outputs[0]] == held
    with pytest.raises(ConfigError, match="task 'logits'"):
        quantize(g, x, bits=6, task="logits")


@pytest.mark.parametrize("name, refine", [("mlp", False), ("cnn_bn", False), ("resnet", True)])
def test_the_analysis_outputs_are_the_models_outputs(zoo_dir, name, refine):
    """SearchResult.outputs (what compile's report scores instead of running both models
    again): exactly the design's simulation, and the float model's outputs (computed 64
    samples at a time, so BLAS may round the last bit differently than one batch of 100)."""
    graph = fxq.load(os.path.join(zoo_dir, name, "model.onnx"))
    x = np.load(os.path.join(zoo_dir, name, "calib.npz"))["x"][:100]
    result = quantize_graph(graph, x, BitConfig(weight_bits=6, act_bits=6), refine=refine)
    (out,) = graph.outputs
    y_float, y_fixed = result.outputs[out]
    np.testing.assert_allclose(y_float, graph.run(x), rtol=1e-12, atol=1e-12)
    assert np.array_equal(y_fixed, result.q.simulate(x, engine="numpy"))


def test_histogram_bins_are_numpys():
    """TensorStats bins log2 |value| by index; the counts np.histogram gives over the same
    quarter-octave edges, values on and beside the edges included."""
    from fxq.analysis.stats import LOG2_EDGES, LOG2_STEP, TensorStats

    rng = np.random.default_rng(3)
    edges = 2.0 ** LOG2_EDGES[::3]
    values = np.concatenate([edges, np.nextafter(edges, 0), np.nextafter(edges, np.inf),
                             -edges, rng.normal(size=5000) * 10.0 ** rng.integers(-40, 40, 5000),
                             [0.0, 1e-300, 1e40]])
    stats = TensorStats()
    stats.add(values)
    magnitude = np.abs(values)
    magnitude = magnitude[magnitude > 0]
    logs = np.clip(np.log2(magnitude), LOG2_EDGES[0], LOG2_EDGES[-1] - LOG2_STEP / 2)
    assert stats.hist.tolist() == np.histogram(logs, bins=LOG2_EDGES)[0].tolist()
    assert stats.zeros == 1


@pytest.mark.parametrize("name", ["mlp", "cnn_bn", "resnet", "dwsep"])
def test_float_scoring_chooses_what_the_integers_do(zoo_dir, name, monkeypatch):
    """The search scores a weighted sum's and a ReLU's candidates in float, without their
    integers (search.Conversion): every candidate's error, every format, every corrected
    bias and the statistics are the ones scoring the integers gives."""
    import fxq.analysis.search as search

    graph = fxq.load(os.path.join(zoo_dir, name, "model.onnx"))
    x = np.load(os.path.join(zoo_dir, name, "calib.npz"))["x"][:150]
    fast = quantize_graph(graph, x, BitConfig(weight_bits=6, act_bits=6))
    monkeypatch.setattr(search, "requantizes_in_float", lambda bits, t: False)
    slow = quantize_graph(graph, x, BitConfig(weight_bits=6, act_bits=6))
    assert [(c.node, c.errors, c.frac) for c in fast.choices] == \
        [(c.node, c.errors, c.frac) for c in slow.choices]
    assert fast.assignment.results == slow.assignment.results
    assert fast.assignment.params == slow.assignment.params
    assert fast.assignment.values.keys() == slow.assignment.values.keys()
    assert all(np.array_equal(v, slow.assignment.values[k])
               for k, v in fast.assignment.values.items())
    assert {k: (s.noise, s.hist.tolist()) for k, s in fast.stats.items()} == \
        {k: (s.noise, s.hist.tolist()) for k, s in slow.stats.items()}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_softmax_of_small_logits_stays_near_float(seed):
    """Logits fitted alone (within +-0.4 here, so a type of [-0.5, 0.5)) differ by up to
    0.8: the softmax's x_max - x type (softmax_inp_norm) holds that, and the softmax stays
    within a few LSBs of float on the calibration data (hls4ml's default type of it, half
    the input's range, put it up to 0.1 off, 25 LSBs)."""
    rng = np.random.default_rng(seed)
    g = _dense_chain(rng, [12, 16, 5], scale=0.3)
    tensors = dict(g.tensors, y=Tensor("y", (5,)))
    nodes = list(g.nodes) + [Node("soft", Op.SOFTMAX, (g.outputs[0],), ("y",), {"axes": (1,)})]
    graph = Graph.build("soft", ["x"], ["y"], nodes, tensors, g.params)
    x = rng.uniform(-1, 1, (200, 12))
    q = quantize(graph, x, bits=8)
    lsb = q.types["y"].resolution
    assert np.abs(q.simulate(x) - graph.run(x)).max() <= 4 * lsb


@pytest.mark.parametrize("input_t", [FixedType(6, 0), FixedType(6, -1), FixedType(6, 3),
                                     FixedType(8, 5), FixedType(6, 2, signed=False),
                                     FixedType(12, 4)])
def test_softmax_logit_differences_saturate_instead_of_wrapping(input_t):
    """The softmax of logits across the whole input type (differences up to twice what a
    signed type's positive half holds) is float's softmax of those logits within the
    tables' resolution. hls4ml's default x_max - x type, ap_ufixed<W - 1, I - 1> with
    AP_WRAP, wrapped a difference of 32 to 0 in ap_fixed<6,6>: exp(-32) became 1, and the
    jet-tagging MLP's 6-bit softmax tied three classes (it lost 2.5 points to that)."""
    from fxq.ops.activation import softmax_table_sizes, softmax_types
    n = 5
    rng = np.random.default_rng(input_t.width + input_t.frac)
    raw = rng.integers(to_raw(input_t.min, input_t), to_raw(input_t.max, input_t) + 1, (400, n))
    raw[:, 0], raw[:, 1] = to_raw(input_t.max, input_t), to_raw(input_t.min, input_t)
    logits = to_float(raw, input_t)
    graph = Graph.build("soft", ["x"], ["y"],
                        [Node("soft", Op.SOFTMAX, ("x",), ("y",), {"axes": (1,)})],
                        {"x": Tensor("x", (n,)), "y": Tensor("y", (n,))}, {})
    layer = softmax_types(FixedType(18, 17, False), n)
    q = QuantizedGraph(graph, {"x": input_t}, {"soft": layer})
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    exact = e / e.sum(axis=1, keepdims=True)
    _, inv_size, _ = softmax_table_sizes(input_t, layer)
    # the reciprocal's index truncates the exp sum (>= 1) by up to one table step
    step = (layer.inv_inp.max + layer.inv_inp.resolution) / inv_size
    assert np.abs(q.simulate(logits) - exact).max() <= step + 8 * layer.table.resolution
    assert np.array_equal(q.simulate(logits).argmax(axis=1) == 0, exact.argmax(axis=1) == 0)
