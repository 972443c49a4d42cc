"""ginvariance: tell genuine invariance from learned invariance in any PyTorch classifier."""

from ginvariance._version import __version__
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
