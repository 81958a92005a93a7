"""One module per op family; importing this package registers every kernel."""
from fxq.ops import activation, layout, linear, merge, pool  # noqa: F401  (registration)
from fxq.ops.registry import FIXED_KERNELS, FLOAT_KERNELS, SHAPE_RULES

__all__ = ["FIXED_KERNELS", "FLOAT_KERNELS", "SHAPE_RULES"]
