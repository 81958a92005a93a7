"""The native engine: a QuantizedGraph's bit-accurate simulation as generated C++.

`native_simulator(q)` generates (codegen), compiles and caches (build) the simulation of
`q`; it computes the same raw values as the NumPy kernels, which stay the reference and the
fallback. `QuantizedGraph.simulate(x, engine="native")` uses it.
"""
from fxq.native.build import NativeBuildError, NativeSimulator, is_built
from fxq.native.codegen import NativeUnsupported, Program, generate


def native_simulator(q, program: Program | None = None) -> NativeSimulator:
    """The compiled simulation of `q` (NativeUnsupported, NativeBuildError if none);
    `program`: its generated source when the caller has it already."""
    return NativeSimulator(program or generate(q))


__all__ = ["NativeBuildError", "NativeSimulator", "NativeUnsupported", "Program",
           "generate", "is_built", "native_simulator"]
