"""Import a model from the user's own code: ``--model MODULE:CALLABLE``, and run it isolated.

The one place where ginvariance runs code named by user input (data and checkpoint files never
run code): pass only modules you trust.
"""

from __future__ import annotations

import contextlib
import functools
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
    """Send to stderr what the block writes to ``sys.stdout`` and to file descriptor 1 (C
    extensions); both are restored afterwards, whatever happens in the block."""
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
    """Run the user's model ``spec`` in the block: stdout to stderr; ``sys.exit`` and any
    exception but a ``GinvarianceError`` or ``KeyboardInterrupt`` become one ``ModelError``."""
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


def _import_file(module_name: str) -> ModuleType:
    """Import the file ``module_name`` under a name made from its resolved path, its folder
    first on ``sys.path`` so that it can import the files beside it."""
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

    The callable gets those of ``sample_shape`` (one input's shape, no batch axis) and
    ``num_classes`` that it declares. The current folder is importable (``mymodels:net`` finds
    ``./mymodels.py``); a part before the last ``:`` that ends in ``.py`` or holds a ``/`` is a
    file path (``examples/own_model/model.py:build``).
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
        if module_name.endswith(".py") or "/" in module_name or os.sep in module_name:
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
        obj = functools.reduce(getattr, attr.split("."), module)
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
    try:
        params = set(inspect.signature(obj).parameters)
    except (TypeError, ValueError):
        params = set()
    given = {"sample_shape": sample_shape and tuple(sample_shape), "num_classes": num_classes}
    kwargs = {k: v for k, v in given.items() if k in params and v is not None}
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
