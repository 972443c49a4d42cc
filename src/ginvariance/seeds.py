"""Seeds: non-negative integers below ``2**32`` (NumPy's range), the one range every seeded
piece of ginvariance accepts; derived seeds (``seed · 1_000_003 + offset``) stay far inside the
64-bit range of ``torch.Generator.manual_seed``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from ginvariance.errors import ConfigError

#: The largest seed accepted.
MAX_SEED = 2**32 - 1


def check_seed(seed: Any, what: str = "seed", example: str = "0") -> int:
    """Return ``seed`` as an ``int``, or raise :class:`ConfigError` naming ``what``.

    >>> check_seed(3)
    3
    """
    fix = f"pass a non-negative seed up to {MAX_SEED}, e.g. {example}"
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise ConfigError(f"{what} {seed!r} is not an integer; {fix}")
    if not 0 <= int(seed) <= MAX_SEED:
        raise ConfigError(f"{what} {seed} is outside 0..{MAX_SEED}; {fix}")
    return int(seed)


#: Held while a block draws from the global generator (re-entrant: blocks may nest).
_GLOBAL_RNG = threading.RLock()


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the block under ``torch.manual_seed(seed)`` and restore the global random state
    after (``torch.random.fork_rng``): weights drawn inside are a function of ``seed`` alone.
    One thread at a time runs such a block (the study's concurrent trainings take turns)."""
    with _GLOBAL_RNG, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


__all__ = ["MAX_SEED", "check_seed", "seeded"]
