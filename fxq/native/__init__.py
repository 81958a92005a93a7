"""The native engine: a QuantizedGraph's bit-accurate simulation as generated C++.

`native_simulator(q)` generates (codegen), compiles and caches (build) the simulation of
`q`; it computes the same raw values as the NumPy kernels, which stay the reference and the
fallback. `QuantizedGraph.simulate(x, engine="native")` uses it.
"""
from fxq.native.build import NativeBuildError, NativeSimulator
from fxq.native.codegen import NativeUnsupported, generate


def native_simulator(q) -> NativeSimulator:
    """The compiled simulation of `q` (NativeUnsupported, NativeBuildError if none)."""
    return NativeSimulator(generate(q))


__all__ = ["NativeBuildError", "NativeSimulator", "NativeUnsupported", "generate",
           "native_simulator"]
