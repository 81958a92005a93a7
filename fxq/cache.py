"""Where compiled builds are cached: C simulations of hls4ml projects and native engines."""
from __future__ import annotations

import os

CACHE_ENV = "FXQ_BUILD_CACHE"


def build_cache_dir() -> str:
    """$FXQ_BUILD_CACHE, else ~/.cache/fxq/builds."""
    default = os.path.join(os.path.expanduser("~"), ".cache", "fxq", "builds")
    return os.environ.get(CACHE_ENV, default)
