"""Import a model from the user's own code: ``--model MODULE:CALLABLE``, and run it isolated.

This is the one place where ginvariance imports a module named by user input, and it
runs that module's code: pass only modules you trust (your own). Files given as data or
checkpoints never run code (npz with ``allow_pickle=False``, safetensors, and
``torch.load(weights_only=True)``).

While the user's code runs (import, build, every forward and backward), :func:`user_code`
sends what it prints to stderr, so that machine-readable output on stdout (``--json``) stays
valid, and turns its exits and exceptions into one :class:`~ginvariance.errors.ModelError`.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType

from torch import nn

from ginvariance.errors import GinvarianceError, ModelError


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send everything written to stdout during the block to stderr.

    Both ``sys.stdout`` (``print``) and file descriptor 1 (C extensions, ``os.write(1, ...)``)
    are redirected; both are restored afterwards, whatever happens in the block.
    """
    sys.stdout.flush()
    try:
        saved: int | None = os.dup(1)
    except OSError:  # no file descriptor 1 (a closed stdout): only sys.stdout is redirected
        saved = None
    try:
        if saved is not None:
            os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stderr.flush()
        if saved is not None:
            os.dup2(saved, 1)
            os.close(saved)


@contextlib.contextmanager
def user_code(spec: str, what: str = "was measured") -> Iterator[None]:
    """Run the user's model ``spec`` (``MODULE:CALLABLE``) in the block, isolated.

    Its output on stdout goes to stderr (:func:`stdout_to_stderr`); ``sys.exit`` and any
    exception other than a :class:`~ginvariance.errors.GinvarianceError` become a
    :class:`~ginvariance.errors.ModelError` of one line. ``KeyboardInterrupt`` passes through
    (an interrupt is the user's, not the model's).
    """
    with stdout_to_stderr():
        try:
            yield
        except GinvarianceError:
            raise
        except SystemExit as exc:
            raise ModelError(
                f"the model {spec!r} called sys.exit({exc.code!r}) while it {what}; a model "
                "must return logits, not exit"
            ) from None
        except Exception as exc:
            reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
            raise ModelError(
                f"the model {spec!r} failed while it {what} ({reason}); fix the model"
            ) from exc


def _is_file_spec(module_name: str) -> bool:
    """Whether the part before ``:`` names a Python file rather than an importable module."""
    return module_name.endswith(".py") or "/" in module_name or os.sep in module_name


def _import_file(module_name: str) -> ModuleType:
    """Import the Python file ``module_name`` (a path) as a module of its own.

    Its folder goes first on ``sys.path``, so that it can import the files beside it; the
    module is registered in ``sys.modules`` under a name made from its resolved path.
    """
    path = Path(module_name).expanduser()
    if not path.is_file():
        raise ModelError(
            f"--model file {module_name!r} does not exist; give FILE.py:CALLABLE with the "
            "path of your model's file, e.g. --model examples/my_model.py:build"
        )
    resolved = path.resolve()
    digest = hashlib.sha256(str(resolved).encode("utf-8", "surrogateescape")).hexdigest()[:12]
    name = f"_ginv_user_{resolved.stem.replace('-', '_')}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, resolved)
    if spec is None or spec.loader is None:
        raise ModelError(
            f"--model file {module_name!r} cannot be imported as Python; give a .py file"
        )
    folder = str(resolved.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def import_model(
    spec: str,
    *,
    sample_shape: Sequence[int] | None = None,
    num_classes: int | None = None,
) -> nn.Module:
    """Import ``MODULE:CALLABLE`` (or ``path/to/file.py:CALLABLE``) and call it to build a model.

    The callable is called with the keyword arguments it declares among
    ``sample_shape`` (one input's shape, no batch axis) and ``num_classes``; others are not
    passed. The current directory is importable, so ``mymodels:net`` finds ``./mymodels.py``;
    a part before the last ``:`` that ends in ``.py`` or holds a ``/`` is a file path,
    imported as it is (``examples/own_model/model.py:build``).
    """
    module_name, sep, attr = spec.rpartition(":")
    if not sep or not module_name or not attr:
        raise ModelError(
            f"--model {spec!r} must have the form MODULE:CALLABLE or FILE.py:CALLABLE, e.g. "
            "mymodels:build_net or path/to/model.py:build_net"
        )
    cwd = str(Path.cwd())
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        if _is_file_spec(module_name):
            module = _import_file(module_name)
        else:
            module = importlib.import_module(module_name)
    except GinvarianceError:
        raise
    except SystemExit as exc:
        raise ModelError(
            f"importing module {module_name!r} called sys.exit({exc.code!r}); a model module "
            "must not exit when imported"
        ) from None
    except Exception as exc:  # the user's module may fail in any way
        raise ModelError(
            f"cannot import module {module_name!r} ({type(exc).__name__}: {exc}); check the "
            "module name and that it is on PYTHONPATH or in the current folder"
        ) from None
    try:
        obj = module
        for part in attr.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        raise ModelError(
            f"module {module_name!r} has no attribute {attr!r}; name a callable that returns "
            "an nn.Module"
        ) from None
    if isinstance(obj, nn.Module):
        return obj
    if not callable(obj):
        raise ModelError(
            f"{spec!r} is not callable; name a function or class returning an nn.Module"
        )
    kwargs: dict[str, object] = {}
    try:
        params = inspect.signature(obj).parameters
    except (TypeError, ValueError):
        params = {}  # type: ignore[assignment]
    if "sample_shape" in params and sample_shape is not None:
        kwargs["sample_shape"] = tuple(sample_shape)
    if "num_classes" in params and num_classes is not None:
        kwargs["num_classes"] = num_classes
    try:
        model = obj(**kwargs)
    except SystemExit as exc:
        raise ModelError(
            f"calling {spec!r} called sys.exit({exc.code!r}); it must return an nn.Module"
        ) from None
    except Exception as exc:
        raise ModelError(
            f"calling {spec!r} failed ({type(exc).__name__}: {exc}); it must build a model "
            "with no arguments, or with sample_shape= and num_classes="
        ) from None
    if not isinstance(model, nn.Module):
        raise ModelError(
            f"{spec!r} returned {type(model).__name__}, not a torch.nn.Module; return the model"
        )
    return model
