"""Deterministic per-test seeds (CONVENTIONS.md: "a fixed seed per test, derived from its name").

``seed_for(name, base)`` hashes a test's name with a base seed (CRC-32, stable across Python runs and
platforms, unlike ``hash``). With the default base 0 every run uses the same seeds; a random base re-runs the
whole suite on fresh seeds, and the base printed in pytest's header replays a failure.
"""

from __future__ import annotations

import os
import secrets
import zlib

ENV_VAR = "KT_SEED"


def seed_for(name: str, base: int = 0) -> int:
    """A 31-bit seed for ``name`` under ``base``: CRC-32 of ``"{base}:{name}"``."""
    return zlib.crc32(f"{int(base)}:{name}".encode()) & 0x7FFFFFFF


def parse_base(option: str | None) -> int:
    """``"fixed"``/None → 0, ``"random"`` → fresh 31-bit integer, ``"<int>"`` → that integer."""
    if option is None or option == "" or option == "fixed":
        return 0
    if option == "random":
        return secrets.randbits(31)
    try:
        value = int(option)
    except ValueError:
        raise ValueError(
            f"--kt-seed / {ENV_VAR} must be 'fixed', 'random' or an integer >= 0, got {option!r}"
        ) from None
    if value < 0:
        raise ValueError(f"--kt-seed / {ENV_VAR} must be >= 0, got {value}")
    return value


def default_option() -> str:
    return os.environ.get(ENV_VAR, "fixed")
