"""The compression methods as visits of a lockstep walk (fxq.compress.walk): at each Dense
or Conv layer, its problem on the data (fxq.ops.patches), the layer's algebra
(fxq.compress.linear), and the replacement nodes and parameters.

Every parameter a method writes is a float32 value (what the ONNX file holds), so the
graph fxq.compress returns and the model it writes are the same function.
"""
from __future__ import annotations

from typing import Callable, Mapping

import numpy as np

from fxq.compress import linear
from fxq.compress.config import LAYER_OPS, CompressConfig, Methods, factorable
from fxq.compress.walk import Replacement, Visit
from fxq.encoding import Codebook
from fxq.ir import Node, Op, Tensor
from fxq.ops.patches import Problem, conv_problem, dense_problem
from fxq.reuse import closest_valid, dense_blocks
from fxq.transforms.share import kmeans_codebook


def f32(a: np.ndarray) -> np.ndarray:
    """`a` rounded to float32 values, kept as float64 (the graph's parameter type)."""
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def is_layer(node: Node) -> bool:
    return node.op in LAYER_OPS


def problem_of(visit: Visit) -> Problem:
    """The visited layer's problem: its inputs as the compressed network computes them; the
    target is the float model's output, or (a layer the float model lacks) the layer's own
    output on those inputs."""
    node = visit.node
    x = visit.inputs[0]
    w = visit.param("weight")
    b = visit.param("bias")
    target = visit.target
    if target is None:
        from fxq.compress.walk import run_nodes
        target = run_nodes((node,), visit.graph.params, {node.inputs[0]: x})
    if node.op is Op.DENSE:
        return dense_problem(x, None, w, b, target)
    return conv_problem(x, None, w, b, target, **{k: node.attrs[k]
                                                  for k in ("strides", "pads", "groups")})


def with_params(visit: Visit, weight: np.ndarray, bias: np.ndarray,
                encoding: Codebook | None, what: str) -> Replacement:
    """The visited layer with new weights and bias (a bias input added when it had none)."""
    node = visit.node
    w_name = visit.param_name("weight")
    b_name = visit.param_name("bias")
    inputs = node.inputs
    if b_name is None:
        b_name = _fresh(visit, f"{node.name}/bias")
        inputs = inputs + (b_name,)
    return Replacement((node.with_(inputs=inputs),), params={w_name: weight, b_name: bias},
                       encodings={w_name: encoding} if encoding is not None else {},
                       what=what)


def _fresh(visit: Visit, base: str) -> str:
    taken = visit.graph.params
    name, i = base, 1
    while name in taken or name in visit.graph.tensors:
        i += 1
        name = f"{base}_{i}"
    return name


def shared_values(w: np.ndarray, clusters: int) -> np.ndarray:
    """The k-means codebook's values (float32; 0 among them when some weights are zero)."""
    return f32(kmeans_codebook(w, clusters).values)


def prunes_weights(node: Node, methods: Methods) -> bool:
    """Whether the weight-pruning pass prunes this layer (column pruning: Dense only)."""
    return methods.weight_pruning and (methods.prune_structure != "column" or
                                       node.op is Op.DENSE)


def column_groups(node: Node, problem: Problem, methods: Methods) -> np.ndarray | None:
    """For column pruning, the block of every weight (in the Problem's (1, O, F) layout):
    the R products one multiplier of hls4ml's resource strategy computes, at the reuse
    factor hls4ml builds for `methods.reuse_factor` (fxq.reuse); else None."""
    if methods.prune_structure != "column":
        return None
    _, n_out, n_in = problem.weights.shape
    built = closest_valid(n_in, n_out, methods.reuse_factor)
    return dense_blocks(n_in, n_out, built).T[None]


def weight_visit(config: CompressConfig, sparsity: Mapping[str, float]) -> Callable:
    """Pruning (each layer's sparsity as `sparsity` gives it) then sharing or a weight set,
    each followed by the refits."""

    def visit(v: Visit) -> Replacement | None:
        node = v.node
        if not is_layer(node):
            return None
        methods: Methods = config.for_layer(node.name)
        s = sparsity.get(node.name, 0.0)
        if s <= 0 and methods.share is None and methods.weights is None:
            return None
        problem = problem_of(v)
        m = linear.Moments.of(problem)
        w = problem.weights.astype(np.float64)
        done = []
        if s > 0:
            groups = column_groups(node, problem, methods)
            w, _ = linear.prune(m, w, s, methods.prune_by, groups=groups)
            blocks = "" if groups is None else \
                f", whole blocks of {methods.reuse_factor} (reuse factor)"
            done.append(f"pruned to {np.mean(w == 0):.1%} zeros ({methods.prune_by}{blocks}, "
                        f"least-squares refit)")
        book = None
        if methods.share is not None:
            w = linear.share(m, w, shared_values(f32(w), methods.share))
            w = f32(linear.refit_values(m, w))
            book = _codebook_of(problem.to_layer(w))
            done.append(f"{book.values.size} shared values ({book.index_bits()}-bit indices)")
        elif methods.weights == "ternary":
            w = linear.ternary(m, w)
            done.append("ternary {-a, 0, a} per output, a a power of two")
        elif methods.weights == "ttq":
            w = linear.ternary(m, w, two_scales=True)
            done.append("ternary {-a_n, 0, a_p} per output, a_n and a_p powers of two")
        elif methods.weights == "binary":
            w = linear.binary(m, w, keep_zeros=s > 0)
            done.append("binary {-a, a} per output, a a power of two" +
                        (" (pruned weights kept zero)" if s > 0 else ""))
        elif methods.weights == "pow2":
            w = linear.pow2(m, w)
            done.append(f"powers of two (exponents within {linear.POW2_EXPONENTS})")
        w = f32(w)
        bias = f32(linear.refit_bias(m, w))
        weight = problem.to_layer(w)
        if book is not None and not np.array_equal(book.dense(), weight):
            raise AssertionError(f"{node.name}: shared weights changed in the refit")
        return with_params(v, weight, bias.reshape(-1), book, "; ".join(done))

    return visit


def _codebook_of(weight: np.ndarray) -> Codebook:
    """The codebook of a layer's shared weights: its distinct values and their indices."""
    used, index = np.unique(weight, return_inverse=True)
    return Codebook(used, index.reshape(weight.shape))


def low_rank_visit(config: CompressConfig, ranks: Mapping[str, int]) -> Callable:
    """Dense and (ungrouped) Conv layers factored into two by reduced-rank regression, at
    the rank `ranks` gives (a network-wide `rank_params`, allocated by fxq.compress.ranks),
    else at the layer's own setting."""

    def visit(v: Visit) -> Replacement | None:
        node = v.node
        methods = config.for_layer(node.name)
        if not is_layer(node) or not methods.low_rank:
            return None
        if not factorable(node):
            return None
        if methods.rank_params is not None and node.name not in ranks:
            return None                         # the allocation leaves it whole
        problem = problem_of(v)
        _, o_count, f_count = problem.weights.shape
        m = linear.Moments.of(problem)
        full = min(o_count, f_count)
        if methods.rank_params is not None:
            rank = ranks[node.name]
            return factored(v, linear.low_rank(m, rank), rank)
        if methods.rank is not None:
            rank = methods.rank
            if rank >= full:
                if node.name in config.layers:
                    from fxq.compress.config import CompressError
                    raise CompressError(f"layer {node.name!r}: rank {rank} is not below the "
                                        f"layer's {full}")
                return None
        else:
            _, s, _ = linear.response_spectrum(m)
            rank = linear.rank_for_energy(s, methods.svd_energy)
        if rank * (o_count + f_count) >= o_count * f_count:
            return None                         # two factors would not be smaller
        factors = linear.low_rank(m, rank)
        return factored(v, factors, rank)

    return visit


def factored(v: Visit, factors: linear.Factors, rank: int) -> Replacement:
    """The visited layer as its two factors at `rank`."""
    node = v.node
    x = v.graph.activation_inputs(node)[0]
    mid = _fresh(v, f"{node.output}/rank{rank}")
    a_name, b_name, bias_name = (_fresh(v, f"{node.name}/{p}")
                                 for p in ("factor_a", "factor_b", "factor_bias"))
    out_shape = v.graph.shape(node.output)
    if node.op is Op.DENSE:
        a, b = f32(factors.first.T), f32(factors.second.T)            # (in, r), (r, out)
        mid_shape = out_shape[:-1] + (rank,)
        first = Node(_fresh(v, f"{node.name}/rank{rank}"), Op.DENSE, (x, a_name), (mid,))
        second = node.with_(inputs=(mid, b_name, bias_name))
    else:
        w = v.param("weight")
        a = f32(factors.first.reshape((rank,) + w.shape[1:]))
        b = f32(factors.second.reshape(factors.second.shape + (1,) * (w.ndim - 2)))
        mid_shape = (rank,) + out_shape[1:]
        first = Node(_fresh(v, f"{node.name}/rank{rank}"), Op.CONV, (x, a_name), (mid,),
                     dict(node.attrs))
        nd = w.ndim - 2
        second = node.with_(inputs=(mid, b_name, bias_name),
                            attrs={**node.attrs, "strides": (1,) * nd, "pads": (0,) * (2 * nd),
                                   "groups": 1})
    return Replacement((first, second),
                       params={a_name: a, b_name: b, bias_name: f32(factors.bias)},
                       tensors={mid: Tensor(mid, tuple(mid_shape))},
                       what=f"rank {rank} factors ({factors.energy:.1%} of the response "
                            "energy)")
