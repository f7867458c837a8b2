"""Checks of the numbers and names a user passes in, with one-line messages.

Every configuration dataclass (``TrainConfig``, ``BenchConfig``) calls these from its
``__post_init__``, so a bad value is refused where it enters, before anything is built
or written: the message names the field, the value and what was expected.
``bool`` is refused where an integer is expected (``True`` is an ``int`` in Python).
"""

from __future__ import annotations

import math
import re
from typing import Any

DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")
MAX_IMG_SIZE = 1024  # twice the papers' 512: beyond it a batch no longer fits in memory


def parse_bool(text: str) -> bool:
    """``true`` / ``false`` (also 1/0, yes/no) as a bool, for ``--bf16`` and ``--pretrained``."""
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


class ConfigError(ValueError):
    """A configuration value out of range; ``field`` names the field it belongs to."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field} {message}")
        self.field = field
        self.detail = message


def check_int(field: str, value: Any, minimum: int | None = None,
              maximum: int | None = None, optional: bool = False) -> None:
    """``value`` is an int (not a bool) in ``[minimum, maximum]``, or ``None`` if optional."""
    if optional and value is None:
        return
    bounds = _bounds(minimum, maximum)
    what = f"an integer{bounds}" + (" or None" if optional else "")
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(field, f"must be {what}, got {value!r}")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ConfigError(field, f"must be {what}, got {value!r}")


def check_number(field: str, value: Any, minimum: float | None = None,
                 positive: bool = False, optional: bool = False) -> None:
    """``value`` is a finite int or float, ``> 0`` if ``positive``, ``>= minimum`` if given."""
    if optional and value is None:
        return
    what = "a finite number" + (" > 0" if positive else "")
    if minimum is not None:
        what += f" >= {minimum}"
    if optional:
        what += " or None"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(field, f"must be {what}, got {value!r}")
    if (positive and value <= 0) or (minimum is not None and value < minimum):
        raise ConfigError(field, f"must be {what}, got {value!r}")


def check_img_size(field: str, value: Any) -> None:
    """A multiple of 32 in ``[32, MAX_IMG_SIZE]`` (Swin's total stride is 32)."""
    what = f"a multiple of 32 between 32 and {MAX_IMG_SIZE}"
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(field, f"must be {what}, got {value!r}")
    if value % 32:
        raise ConfigError(field, f"must be divisible by 32, got {value}")
    if not 32 <= value <= MAX_IMG_SIZE:
        raise ConfigError(field, f"must be {what}, got {value}")


def check_device(field: str, value: Any, allow_none: bool = False) -> None:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (``None`` too when ``allow_none``)."""
    if allow_none and value is None:
        return
    if not isinstance(value, str) or not DEVICE_PATTERN.fullmatch(value):
        raise ConfigError(field, f"must be auto, cpu, cuda or cuda:N, got {value!r}")


def check_bool(field: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ConfigError(field, f"must be true or false, got {value!r}")


def check_choice(field: str, value: Any, choices: Any) -> None:
    if value not in choices:
        raise ConfigError(field, f"must be one of {', '.join(map(str, choices))}; got {value!r}")


def _bounds(minimum: int | None, maximum: int | None) -> str:
    if minimum is not None and maximum is not None:
        return f" between {minimum} and {maximum}"
    if minimum is not None:
        return f" >= {minimum}"
    if maximum is not None:
        return f" <= {maximum}"
    return ""
