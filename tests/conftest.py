import os
import subprocess
import sys

import pytest

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
