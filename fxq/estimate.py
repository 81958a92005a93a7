"""Cycle and resource estimates of the hls4ml design fxq emits, before any synthesis.

Per layer and in total: latency in cycles, initiation interval (II), DSP, LUT, FF and
BRAM18, for io_parallel and io_stream, latency and resource strategies and any reuse
factor R. The model follows what HLS does with the templates hls4ml writes:

* latency strategy, R = 1: weights are constants. A product with a zero weight disappears, a
  power of two is a shift (wiring), a narrow product is LUT shift-and-add logic (one adder per
  extra canonical-signed-digit of the weight), a wide one takes DSP slices (as many as the
  device's multiplier ports need). Sums are adder trees: in the DSP's post-adder for DSP
  products, in carry-chain LUTs otherwise.
* reuse factor R: each multiplier serves R products, so multipliers divide by R and the
  layer's interval grows to R cycles; zeros and shifts still need no multiplier.
* resource strategy: weights live in memory (block RAM when large enough), so nothing is
  constant-folded: every product is a general multiplier.
* io_parallel convolution computes one output pixel per R cycles; io_stream layers consume
  one input pixel per R cycles, with line buffers for convolution and pooling windows, and
  FIFOs between layers; the design is a dataflow pipeline.

Coefficients, and where each comes from, are in hw/estimator.toml. This is a first-order
model to compare designs and see what will not fit; `fxq synth` gives the real figures.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from fxq.cost import (Cost, Lanes, add_ns, coefficients, csd_digits, cycles_for,  # noqa: F401
                      delay_scale, dsps_for, elements, memory, products, sum_pipeline,
                      tree_levels)
from fxq.devices import Device
from fxq.fixed import FixedType
from fxq.layer import FixedNode
from fxq.op import Op
from fxq.ops.registry import find, lookup, rule
from fxq.quantized import QuantizedGraph
from fxq.reuse import built_reuse, unrolled, zero_blocks
from fxq.target import Target

@dataclass
class LayerEstimate:
    name: str
    op: str
    cost: Cost


@dataclass
class Estimate:
    """Per-layer and total estimate, with the part's totals for utilization."""

    device: Device
    settings: dict[str, Any]
    layers: list[LayerEstimate]
    total: Cost = field(default_factory=Cost)
    # what the top function adds to its layers' sum: io_parallel's registers between calls
    # (cycles) and a dataflow top's ping-pong arrays (FFs)
    top: Cost = field(default_factory=lambda: Cost(ii=0))

    def utilization(self) -> dict[str, float]:
        d = self.device
        return {"dsp": self.total.dsp / d.dsp, "lut": self.total.lut / d.lut,
                "ff": self.total.ff / d.ff, "bram18": self.total.bram18 / d.bram18}

    def csynth(self) -> dict[str, int]:
        """LUT and FF as HLS C synthesis reports them (it overcounts logic synthesis's:
        hw/estimator.toml [csynth])."""
        c = coefficients()["csynth"]
        return {"lut": math.ceil(self.total.lut * c["lut_factor"]),
                "ff": math.ceil(self.total.ff * c["ff_factor"])}

    def to_json(self) -> dict[str, Any]:
        return {"model": "fxq first-order estimate (hw/estimator.toml)",
                "part": self.device.part, "device": self.device.name,
                "settings": self.settings,
                "total": asdict(self.total), "utilization": self.utilization(),
                "latency_ns": self.total.latency * self.settings.get("clock_ns", 5.0),
                "predicts": {"latency": "C synthesis", "ii": "C synthesis",
                             "dsp": "C synthesis", "bram18": "C synthesis",
                             "lut": "logic synthesis", "ff": "logic synthesis"},
                "csynth": self.csynth(),
                "available": {"dsp": self.device.dsp, "lut": self.device.lut,
                              "ff": self.device.ff, "bram18": self.device.bram18},
                "top": {"latency": self.top.latency, "ff": self.top.ff},
                "layers": [{"name": e.name, "op": e.op, **asdict(e.cost)}
                           for e in self.layers]}


class _Estimator:
    def __init__(self, q: QuantizedGraph, target: Target):
        self.q, self.g, self.target = q, q.graph, target
        self.io, self.strategy = str(target.io_type), str(target.strategy)
        self.reuse = target.reuse_factor          # the current layer's, set by layer()
        self.device = target.device
        self.clock = float(target.clock_ns)
        self.scale = delay_scale(self.device.family)
        self.c = coefficients()

    def cycles(self, path_ns: float) -> int:
        """Registers HLS puts into a path of `path_ns` (an UltraScale+ figure) on this
        design's part at its clock."""
        return cycles_for(path_ns * self.scale, self.clock)

    def stream(self) -> bool:
        return self.io == "io_stream"

    def pixels(self, tensor: str) -> int:
        """Spatial positions of a channels-first tensor (1 for vectors)."""
        shape = self.g.shape(tensor)
        return elements(shape[1:]) if len(shape) > 1 else 1

    def layer(self, node) -> Cost:
        """One node's cost: its op's cost rule; a layout op without one is wires (nothing)."""
        fx = self.q.fixed_node(node)
        self.reuse = built_reuse(self.q, node, self.target.strategy,
                                 self.target.reuse_for(node.name))
        rule = find("cost", node.op)
        if rule is None and node.op.is_layout:
            return Cost(latency=0, ii=1)
        cost = (rule or lookup("cost", node.op, node.name))(self, node, fx)
        if self.stream():
            cost.add_resources(self.fifo(node.output, fx.result))
            # each layer is a dataflow process: its loop counters and state machine, and
            # the registers of one input and one output word
            s, x = self.c["stream"], self.g.activation_inputs(node)
            words = sum(self.channels(t) * self.q.types[t].width for t in x) \
                + self.channels(node.output) * fx.result.width
            cost.ff += math.ceil(s["layer_ctrl_ff"] + s["word_ff_per_bit"] * words)
            cost.lut += math.ceil(s["layer_ctrl_lut"])
        return cost.whole()

    def channels(self, tensor: str) -> int:
        """Elements of one pixel (one io_stream word) of a channels-first tensor."""
        shape = self.g.shape(tensor)
        return shape[0] if len(shape) > 1 else elements(shape)

    def multiply_accumulate(self, fx: FixedNode, w: np.ndarray, per_step: int,
                            shift: int = 0) -> Cost:
        """Cost of a weight matrix (K x O) applied to `per_step` input vectors one after
        another (pixels); `shift`: cycles each step of the resource strategy spends before
        its reuse loop (io_stream's line buffer shifting in a pixel).

        Latency strategy (weights are constants): hls4ml's dense_latency pipelines at
        II = R and limits HLS's `mul` operations to ceil(K*O/R) - floor(zeros/R)
        (ALLOCATION). Only the products that stay multiplications (in DSP slices) are
        shared; constant products built in LUTs and the adders are not, so a layer
        without DSP products is as fast and as large at any R. HLS reaches a lower
        interval than R where the shared products need fewer cycles, and no lower than
        the step's depth + 1 (a step is not overlapped with the next when R exceeds it).
        Resource strategy (weights in memory): dense_resource runs R iterations of a loop
        pipelined at II 1, each with ceil(K*O/R) general multipliers, then its result
        loop; steps follow one another."""
        constant = self.strategy == "latency"
        p = products(w, fx.param_types[0], fx.inputs[0], constant, self.device)
        r = self.reuse
        accum = fx.layer.accum
        n_out = w.shape[-1]
        clk = self.c["clock"]
        first = clk["dsp_mult_ns"] if p.uses_dsp else clk["lut_mult_ns"] if p.units else 0.0
        if constant:
            limit = max(math.ceil(w.size / r) - p.zeros // r, 1)
            shared = max(math.ceil(p.dsp_units / limit), 1)
            dsp = math.ceil(p.dsp * min(1.0, limit / p.dsp_units)) if p.dsp_units else 0
            lut_products = p.lut
            terms = p.nonzero_per_output
            adds = int(np.maximum(terms - 1, 0).sum())
            multipliers = min(limit, p.dsp_units) if shared > 1 else 0
        else:
            shared = r
            dsp = math.ceil(p.dsp / r)
            lut_products = p.lut / r
            terms = np.full(n_out, w.shape[0])
            adds = math.ceil(w.size / r)                 # one adder behind each multiplier
            multipliers = math.ceil(p.units / r) if r > 1 else 0
        # the product stage, then one adder tree per output (all its terms at once in the
        # latency strategy; one term per multiplier and iteration in the resource one), cut
        # into cycles of the clock; each cut registers what is live there
        pipe = sum_pipeline(np.maximum(terms if constant else np.ones(n_out), 1),
                            accum.width, first * self.scale, add_ns(accum.width, self.scale),
                            self.clock, p.uses_dsp, p.product_bits)
        if constant:
            # the line buffer's shift is pipelined with the products here (II 1 at R = 1)
            depth = shared - 1 + pipe.cycles
            ii = max(shared, min(r, depth + 1))
        else:
            depth = shift + r - 1 + pipe.cycles + int(self.c["resource"]["loop_cycles"])
            ii = depth + 1
        n_cast = n_out * fx.result.width if fx.result.rounding.name != "TRN" \
            or fx.result.overflow.name != "WRAP" else 0
        mux_lut = multipliers * fx.inputs[0].width * math.ceil(math.log2(shared)) \
            if shared > 1 else 0
        # sharing registers each output's partial sum; the resource strategy's loop also
        # registers its products (a DSP product stays in the slice's own registers)
        registered = 0 if shared == 1 else n_out * accum.width + (
            0 if constant else multipliers * p.product_bits)
        cost = Cost(dsp=dsp,
                    lut=math.ceil(lut_products + adds * accum.width * self.c["add"]["lut_per_bit"]
                                  + n_cast + n_out * accum.width + mux_lut),
                    # the registers of the pipeline's cuts; with sharing, the registered
                    # products and one accumulator per output besides; a layer of latency
                    # > 0 also registers its outputs
                    ff=math.ceil((pipe.ff + registered
                                  + (n_out * fx.result.width if depth else 0))
                                 * self.c["register"]["ff_per_bit"]))
        if not constant:
            # hls4ml reshapes the weights into R rows read one per cycle: a memory of R
            # words of (K * O / R) weights; too small a memory stays in LUTs
            bits = w.size * fx.param_types[0].width
            m = self.c["memory"]
            if r > 1 and bits >= m["bram_min_bits"]:
                cost.bram18 += math.ceil(bits / r / m["bram18_width"]) * \
                    math.ceil(r / m["bram18_depth"])
            else:
                cost.lut += math.ceil(bits / m["lut_bits"])
        cost.ii = ii * per_step
        cost.latency = ii * (per_step - 1) + depth
        return cost

    @rule("cost", Op.DENSE)
    def dense(self, node, fx) -> Cost:
        w = fx.params[0]
        cost = self.multiply_accumulate(fx, w, 1)
        if unrolled(w, self.target.strategy, self.reuse):
            # hls4ml's ResourceUnrolled: each of the ceil(K * O / R) multipliers computes one
            # block of R products; a block of zero weights has none (rows in the IR's order:
            # a Dense after a Flatten of a channels-first map is emitted channels-last)
            blocks, zeros = zero_blocks(w, self.reuse)
            live = (blocks - zeros) / blocks
            cost.dsp = math.ceil(cost.dsp * live)
            cost.lut = math.ceil(cost.lut * live)
        if self.stream():
            # hls4ml's stream dense reads its input word, computes and writes its output
            # word, one after another: not pipelined
            cost.latency += int(self.c["stream"]["dense_io_cycles"])
            cost.ii = cost.latency
        return cost

    @rule("cost", Op.CONV)
    def conv(self, node, fx) -> Cost:
        w = fx.params[0]                                            # O, C/G, *k
        x = self.g.activation_inputs(node)[0]
        kernel = w.shape[2:]
        pads = node.attrs["pads"]
        steps = self.pixels(node.output)
        shift = 0
        if self.stream():
            # hls4ml streams a padded Conv's input through a zero-padding layer of its own
            # (a process writing every padded pixel); the Conv then reads every one, each
            # shifted into the line buffer's window first
            shape = self.g.shape(x)
            nd = len(shape) - 1
            padded = (shape[0],) + tuple(shape[1 + i] + pads[i] + pads[i + nd]
                                         for i in range(nd))
            steps, shift = elements(padded[1:]), kernel[-1] - 1
        # (C/G * k) x O: each output sums C/G * k products (depthwise: its own k inputs)
        cost = self.multiply_accumulate(fx, w.reshape(w.shape[0], -1).T, steps, shift)
        if self.stream():
            cost.ff += self.line_buffer(padded, kernel, fx.inputs[0])
            if any(pads):
                # the zero-padding process: its output FIFO, control and word registers,
                # and the two cycles its pipeline adds
                s = self.c["stream"]
                cost.add_resources(self.fifo(x, fx.inputs[0], padded))
                cost.ff += math.ceil(s["layer_ctrl_ff"] + 2 * s["word_ff_per_bit"]
                                     * shape[0] * fx.inputs[0].width)
                cost.lut += math.ceil(s["layer_ctrl_lut"])
                cost.latency += 2
        return cost

    @rule("cost", Op.PAD)
    def _pad(self, node, fx) -> Cost:
        """io_parallel: wires. io_stream: hls4ml's zero-padding process writes every padded
        pixel, one a cycle."""
        if not self.stream():
            return Cost(latency=0, ii=1)
        pixels = self.pixels(node.output)
        return Cost(latency=pixels + 1, ii=pixels)

    def line_buffer(self, shape: tuple[int, ...], kernel, t: FixedType) -> int:
        """Flip-flops of the line buffer of a windowed op in io_stream reading an input of
        `shape`: kernel height - 1 rows of it and the window itself, shift registers
        (ap_shift_reg) that HLS and Vivado keep in registers."""
        row = elements(shape[2:]) if len(shape) > 2 else 1
        window = elements(kernel)
        return int(((kernel[0] - 1) * row + window) * shape[0] * t.width) if len(shape) > 2 \
            else int(window * shape[0] * t.width)

    # -- per-element ops: activations, pooling, merges, batch norm -----------------------

    def lanes(self, node, fx) -> "Lanes":
        """How many elements a per-element op handles at once (all of them in io_parallel,
        one pixel's channels per step in io_stream), and its steps."""
        x = self.g.activation_inputs(node)[0]
        n_out = elements(self.g.shape(node.output))
        steps = self.pixels(x) if self.stream() else 1
        return Lanes(x=x, steps=steps, width=fx.result.width,
                      out=n_out // (self.pixels(node.output) if self.stream() else 1),
                      inp=elements(self.g.shape(x)) // steps)

    def per_element(self, node, fx, fill) -> Cost:
        """The frame every per-element rule shares: `fill(cost, lanes)` adds the op's own
        logic and sets its latency (the registers its path needs at the clock, 0 when it
        chains into its neighbours); each register holds the outputs (FFs). io_stream: one
        step per pixel, each through the registered loop body."""
        lanes = self.lanes(node, fx)
        cost = Cost(latency=0, ii=1)
        fill(cost, lanes)
        depth = cost.latency + (1 if self.stream() else 0)
        cost.ff += int(lanes.out * lanes.width * depth)
        cost.ii = lanes.steps
        cost.latency = depth + lanes.steps - 1 if self.stream() else cost.latency
        return cost

    @rule("cost", Op.RELU, Op.CLIP)
    def _clamp(self, node, fx) -> Cost:
        def fill(cost, n):
            cost.lut = math.ceil(n.out * n.width * self.c["select"]["lut_per_bit"])
            cost.latency = self.cycles(self.c["clock"]["select_ns"])
        return self.per_element(node, fx, fill)

    @rule("cost", Op.LEAKY_RELU)
    def _leaky_relu(self, node, fx) -> Cost:
        alpha = fx.layer.param("alpha")
        digits = csd_digits(int(round(node.attrs["alpha"] * 2 ** alpha.frac)))

        def fill(cost, n):
            cost.lut = n.out * n.width * (1 + digits)
            cost.latency = self.cycles(self.c["clock"]["select_ns"]
                                       + self.c["clock"]["lut_mult_ns"])
        return self.per_element(node, fx, fill)

    @rule("cost", Op.SIGMOID, Op.TANH)
    def _table(self, node, fx) -> Cost:
        def fill(cost, n):
            bram, lut = memory(fx.layer.table_size * fx.layer.table.width, ports=n.out)
            cost.bram18, cost.lut, cost.latency = bram, lut + n.out * n.width, 1
        return self.per_element(node, fx, fill)

    @rule("cost", Op.SOFTMAX)
    def _softmax(self, node, fx) -> Cost:
        from fxq.ops.activation import softmax_table_sizes

        def fill(cost, n):
            exp_size, inv_size, _ = softmax_table_sizes(fx.inputs[0], fx.layer)
            b1, l1 = memory(exp_size * fx.layer.table.width, ports=n.out)
            b2, l2 = memory(inv_size * fx.layer.inv_table.width)
            a, b = fx.layer.accum.width, fx.layer.inv_table.width
            dsp_each = dsps_for(a, b, self.device) \
                if a + b > self.c["multiply"]["dsp_product_bits"] else 0
            cost.bram18 = b1 + b2
            cost.dsp = n.out * dsp_each
            cost.lut = l1 + l2 + 2 * n.out * fx.layer.accum.width * self.c["add"]["lut_per_bit"] \
                + (0 if dsp_each else n.out * a * b // 2)
            # max tree, exp table (a registered read), sum tree, inverse table, product
            clk, levels = self.c["clock"], tree_levels(n.out)
            cost.latency = (self.cycles(levels * clk["select_ns"]) + 1
                            + self.cycles(levels * add_ns(a)) + 1
                            + self.cycles(clk["dsp_mult_ns"] if dsp_each else clk["lut_mult_ns"])
                            + 1)
        return self.per_element(node, fx, fill)

    @rule("cost", Op.MAX_POOL, Op.AVG_POOL, Op.GLOBAL_MAX_POOL, Op.GLOBAL_AVG_POOL)
    def _pool(self, node, fx) -> Cost:
        op = node.op
        windowed = op in (Op.MAX_POOL, Op.AVG_POOL)

        def fill(cost, n):
            window = elements(node.attrs["kernel"]) if windowed else self.pixels(n.x)
            acc_w = fx.layer.accum.width if fx.layer.accum is not None else n.width
            # io_stream's global pooling keeps one running sum (or max) per channel and
            # takes one pixel per step: one adder per channel, not a tree over the map
            adders = window - 1 if windowed or not self.stream() else 1
            cost.lut = n.out * adders * acc_w * self.c["add"]["lut_per_bit"]
            if op in (Op.AVG_POOL, Op.GLOBAL_AVG_POOL):
                cost.lut += n.out * acc_w * 2          # the division by a constant
            path = tree_levels(window) * (add_ns(acc_w) if op in (Op.AVG_POOL,
                                          Op.GLOBAL_AVG_POOL) else self.c["clock"]["select_ns"])
            if op in (Op.AVG_POOL, Op.GLOBAL_AVG_POOL):
                path += self.c["clock"]["lut_mult_ns"]      # the constant 1/window
            cost.latency = self.cycles(path)
            if self.stream() and windowed:
                cost.ff += self.line_buffer(self.g.shape(n.x), node.attrs["kernel"],
                                            fx.inputs[0])
        return self.per_element(node, fx, fill)

    @rule("cost", Op.BATCH_NORM)
    def _batch_norm(self, node, fx) -> Cost:
        def fill(cost, n):
            scale, scale_t = fx.param("scale")
            p = products(scale.reshape(-1, 1).T, scale_t, fx.inputs[0],
                         self.strategy == "latency", self.device)
            per_channel = n.inp // max(scale.size, 1)
            cost.dsp = p.dsp * per_channel
            cost.lut = int(p.lut * per_channel + n.out * n.width * self.c["add"]["lut_per_bit"])
            clk = self.c["clock"]
            cost.latency = self.cycles((clk["dsp_mult_ns"] if p.uses_dsp else clk["lut_mult_ns"])
                                       + add_ns(n.width))
        return self.per_element(node, fx, fill)

    @rule("cost", Op.ADD, Op.SUB)
    def _add(self, node, fx) -> Cost:
        def fill(cost, n):
            cost.lut = n.out * n.width * self.c["add"]["lut_per_bit"]
            cost.latency = self.cycles(add_ns(n.width))
        return self.per_element(node, fx, fill)

    @rule("cost", Op.MUL)
    def _mul(self, node, fx) -> Cost:
        def fill(cost, n):
            a, b = fx.inputs[0].width, (fx.inputs + fx.param_types)[1].width
            if a + b > self.c["multiply"]["dsp_product_bits"]:
                cost.dsp = n.out * dsps_for(a, b, self.device)
                cost.latency = self.cycles(self.c["clock"]["dsp_mult_ns"])
            else:
                cost.lut = int(n.out * a * b * self.c["multiply"]["lut_per_partial_product_bit"])
                cost.latency = self.cycles(self.c["clock"]["lut_mult_ns"])
        return self.per_element(node, fx, fill)

    @rule("cost", Op.CONCAT)
    def _concat(self, node, fx) -> Cost:
        return self.per_element(node, fx, lambda cost, n: None)     # wires

    def fifo(self, tensor: str, t: FixedType, shape: tuple[int, ...] | None = None) -> Cost:
        """The FIFO hls4ml puts on a layer's output stream: one per channel, as deep as the
        tensor (of `shape`, when given) has pixels (hls4ml's default before FIFO-depth
        optimization)."""
        s = self.c["stream"]
        shape = self.g.shape(tensor) if shape is None else shape
        channels = shape[0] if len(shape) > 1 else elements(shape)
        depth = elements(shape[1:]) if len(shape) > 1 else 1
        bram, lut = memory(depth * t.width)
        return Cost(bram18=channels * bram,
                    lut=channels * (lut + s["fifo_ctrl_lut"]),
                    ff=channels * s["fifo_ctrl_ff"])


def _copies(q: QuantizedGraph, target: Target) -> list[LayerEstimate]:
    """The layers the emitter adds to move a tensor's elements (fxq.hls.emit: Transpose,
    Reshape, FxqGather). io_parallel: wires. io_stream: a Transpose or gather holds the
    whole tensor in registers (hls4ml partitions it completely) and writes it out after
    reading it, a cycle per pixel each way; a Reshape repacks the stream, a cycle per
    pixel, holding nothing."""
    from fxq.hls.emit import EmitError, plan

    if str(target.io_type) != "io_stream":
        return []
    try:
        copies = plan(q, target).copies
    except EmitError:                  # refused where the design is written, not here
        return []
    out = []
    for layer, (tensor, kind) in copies.items():
        shape = q.graph.shape(tensor)
        size = elements(shape)
        pixels = size // shape[0] if len(shape) > 1 else 1
        width = q.types[tensor].width
        if kind == "Reshape":
            cost = Cost(latency=pixels, ii=pixels, ff=shape[0] * width)
        else:
            cost = Cost(latency=2 * pixels, ii=2 * pixels, ff=size * width, lut=size * width)
        out.append(LayerEstimate(layer, kind.upper(), cost))
    return out


def parallel_dataflow(q: QuantizedGraph, target: Target) -> bool:
    """Whether hls4ml (its pipeline-style pass) makes an io_parallel top a dataflow region:
    a Conv computed pixel by pixel (the default parallelization factor 1 on more than one
    output pixel) or a layer on the resource strategy."""
    if str(target.strategy) == "resource":
        return True
    return any(n.op is Op.CONV and elements(q.graph.shape(n.output)[1:]) > 1
               for n in q.graph.nodes)


def estimate(q: QuantizedGraph, *, io_type: str | None = None, strategy: str = "latency",
             reuse_factor: int = 1, part: str = "xcvu13p-flga2577-2-e",
             clock_ns: float = 5.0, target: Target | None = None) -> Estimate:
    """The estimate of the design `emit_hls` writes for `q` with these settings (`target`,
    or a Target made and validated from the keywords: a bad one is a TargetError)."""
    target = target or Target(io_type=io_type or q.io_type, strategy=strategy,
                              reuse_factor=reuse_factor, part=part, clock_ns=clock_ns)
    io_type = str(target.io_type)
    q = q.with_io_type(io_type)
    e = _Estimator(q, target)
    layers = [LayerEstimate(n.name, n.op.name, e.layer(n)) for n in q.graph.nodes]
    layers += _copies(q, target)
    total, top = Cost(), Cost(ii=0)
    for layer in layers:
        total.add_resources(layer.cost)
    if io_type == "io_stream":
        total.ii = max((l.cost.ii for l in layers), default=1) \
            + int(coefficients()["stream"]["dataflow_ii_extra"])
        # stages overlap: the slowest stage's interval plus every stage's pipeline depth
        depths = [l.cost.latency - l.cost.ii + 1 for l in layers]
        total.latency = sum(max(d, 0) for d in depths) + total.ii
    else:
        total.ii = max((l.cost.ii for l in layers), default=1)
        # the top function's pipeline registers the values passed between its calls:
        # about a cycle at most boundaries (hw/estimator.toml [parallel])
        calls = [n for n in q.graph.nodes if not n.op.is_layout]
        top.latency = math.ceil(coefficients()["parallel"]["call_cycles"] * len(calls))
        if parallel_dataflow(q, target):
            # hls4ml makes such a top a dataflow region: every array passed between its
            # processes is a ping-pong pair of fully partitioned registers
            top.ff = sum(2 * elements(q.graph.shape(n.output)) * q.types[n.output].width
                         for n in calls)
        total.latency = sum(l.cost.latency for l in layers) + top.latency
        total.ff += top.ff
    settings = {"io_type": io_type, "strategy": str(target.strategy),
                "reuse_factor": target.reuse_factor, "clock_ns": target.clock_ns,
                **({"layer_reuse": dict(target.layer_reuse)} if target.layer_reuse else {})}
    return Estimate(target.device, settings, layers, total, top)
