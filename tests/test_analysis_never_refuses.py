"""The analysis never refuses what it chose: on randomized graphs over the ops fxq emits, at
every width from 4 to 16 bits and both io types, the types the search picks are accepted by
the QuantizedGraph, emitted to hls4ml, and (at the extremes) bit-exact against the C
simulation."""
from __future__ import annotations

import numpy as np
import pytest

import fxq
from fxq.hls import verify
from fxq.hls.emit import plan
from fxq.target import Target
from helpers import assert_exact
from random_graphs import BUILDERS


@pytest.mark.parametrize("io_type", ["io_parallel", "io_stream"])
@pytest.mark.parametrize("kind", list(BUILDERS))
def test_every_width_quantizes_and_emits(kind, io_type):
    for seed in range(3):
        q0, x = BUILDERS[kind](np.random.default_rng(seed), io_type)
        for bits in (4, 5, 6, 8, 10, 12, 16):
            q = fxq.quantize(q0.graph, calib=x, bits=bits, io_type=io_type)
            plan(q, Target(io_type=io_type))


@pytest.mark.parametrize("bits", [4, 16])
@pytest.mark.parametrize("io_type", ["io_parallel", "io_stream"])
@pytest.mark.parametrize("kind", list(BUILDERS))
def test_the_chosen_design_is_bit_exact(kind, io_type, bits, hls_dir):
    q0, x = BUILDERS[kind](np.random.default_rng(0), io_type)
    q = fxq.quantize(q0.graph, calib=x, bits=bits, io_type=io_type)
    assert_exact(verify(q, hls_dir, x, overwrite=True))
