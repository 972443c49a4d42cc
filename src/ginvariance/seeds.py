"""Seeds: the one range every seeded piece of ginvariance accepts.

Seeds are non-negative integers below ``2**32`` (the range NumPy and most tools accept).
Derived seeds (``seed + batch index``, ``seed · 1_000_003 + offset``) then stay far inside
the 64-bit range that ``torch.Generator.manual_seed`` takes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ginvariance.errors import ConfigError

#: The largest seed accepted.
MAX_SEED = 2**32 - 1


def check_seed(seed: Any, what: str = "seed", example: str = "0") -> int:
    """Return ``seed`` as an ``int``, or raise :class:`ConfigError` naming ``what``.

    >>> check_seed(3)
    3
    """
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise ConfigError(
            f"{what} {seed!r} is not an integer; pass a non-negative seed up to {MAX_SEED}, "
            f"e.g. {example}"
        )
    if not 0 <= int(seed) <= MAX_SEED:
        raise ConfigError(
            f"{what} {seed} is outside 0..{MAX_SEED}; pass a non-negative seed up to "
            f"{MAX_SEED}, e.g. {example}"
        )
    return int(seed)


__all__ = ["MAX_SEED", "check_seed"]
