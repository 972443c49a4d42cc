"""ginvariance: tell genuine invariance from learned invariance in any PyTorch classifier."""

__version__ = "0.1.0"

from ginvariance.errors import GinvarianceError
from ginvariance.groups import get_group

__all__ = ["GinvarianceError", "__version__", "get_group", "measure"]


def __getattr__(name: str) -> object:  # lazy: keep `import ginvariance` light
    if name == "measure":
        from ginvariance.metrics import measure

        return measure
    raise AttributeError(f"module 'ginvariance' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__} - {"annotations"})
