import os
import re
import subprocess
import sys

import pytest
import torch  # noqa: F401  (loaded in every test: the C-simulation comparisons then always
#                          cover fxq's PyTorch convolution engine, whatever the test order)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ZOO_DIR = os.path.join(ROOT, "examples", "zoo")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "examples"))


@pytest.fixture(scope="session")
def zoo_dir() -> str:
    """The example zoo, built (cached) by examples/build_zoo.py if not yet there."""
    subprocess.run([sys.executable, os.path.join(ROOT, "examples", "build_zoo.py"),
                    "--out", ZOO_DIR], check=True, capture_output=True)
    return ZOO_DIR


@pytest.fixture(scope="session")
def tiny_dir() -> str:
    """The MLPerf Tiny reference networks, built (cached) by examples/build_zoo.py."""
    out = os.path.join(ROOT, "examples", "tiny")
    subprocess.run([sys.executable, os.path.join(ROOT, "examples", "build_zoo.py"),
                    "--set", "tiny", "--out", out], check=True, capture_output=True)
    return out


@pytest.fixture(autouse=True)
def _build_cache(request, monkeypatch):
    """C-simulation builds cached in pytest's cache, so reruns skip g++."""
    cache = request.config.cache.mkdir("fxq_builds")
    monkeypatch.setenv("FXQ_BUILD_CACHE", str(cache))


@pytest.fixture
def hls_dir(request):
    """A project directory stable across runs (a cached build is tied to its directory,
    where the C simulation reads the weights), rewritten by every run."""
    name = re.sub(r"[^0-9a-zA-Z_]+", "_", request.node.name)
    return request.config.cache.mkdir("hls_projects") / name
