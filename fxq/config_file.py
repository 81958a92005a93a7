"""Reading a TOML configuration file, every failure one error of the caller's kind."""
from __future__ import annotations

import tomllib
from typing import Any

from fxq.errors import FxqError


def read_toml(path: str, error: type[FxqError]) -> dict[str, Any]:
    """The tables of the TOML file `path`; `error` naming the file when it cannot be read
    or is not valid TOML."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        raise error(f"{path}: cannot read ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{path}: not valid TOML ({exc})") from None
