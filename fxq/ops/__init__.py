"""One module per op family; importing this package registers every op's rules."""
from fxq.ops import activation, layout, linear, merge, pool  # noqa: F401  (registration)
from fxq.ops import elu, hard_sigmoid, hard_swish, prelu, resize  # noqa: F401  (after the families)
from fxq.ops.registry import MissingRule, find, lookup, missing, rule

__all__ = ["MissingRule", "find", "lookup", "missing", "rule"]
