"""The package's shape: shared checks, no import of the package root from inside it, no circle,
one eval mode for every measure, and any callable accepted as a model."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
from torch import nn

from ginvariance.checks import check_int, is_int, is_number, json_roundtrip
from ginvariance.errors import ConfigError, ModelError

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "ginvariance"


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
            names += [f"{node.module}.{a.name}" for a in node.names]
    return names


def test_no_module_imports_the_package_root() -> None:
    offenders = [
        str(p.relative_to(PACKAGE))
        for p in PACKAGE.rglob("*.py")
        if p.name != "__init__.py" or p.parent != PACKAGE
        if "ginvariance" in _imports(p) or "ginvariance.__version__" in _imports(p)
    ]
    assert offenders == []


def test_checkpoints_do_not_import_the_trainer() -> None:
    """The trainer imports checkpoints; the way back would close a circle."""
    imported = _imports(PACKAGE / "training" / "checkpoint.py")
    assert not [m for m in imported if m.startswith("ginvariance.training.trainer")]


@pytest.mark.parametrize("value", [True, False, 0, -3, 2.0, "4", None])
def test_check_int_refuses_booleans_and_non_positive(value: object) -> None:
    with pytest.raises(ModelError, match="width must be a positive integer"):
        check_int(value, "width", error=ModelError)


def test_check_int_bounds_and_none() -> None:
    assert check_int(2, "num_classes", minimum=2) == 2
    assert check_int(None, "width", allow_none=True) is None
    with pytest.raises(ConfigError, match=r"an integer ≥ 2"):
        check_int(1, "num_classes", minimum=2)
    assert is_int(3) and not is_int(True) and is_number(0.5) and not is_number(False)
    assert json_roundtrip({"a": (1, 2)}) == {"a": [1, 2]}


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(4)
        self.lin = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(self.bn(x.flatten(1)))


def test_eval_mode_restores_every_submodule() -> None:
    """A BatchNorm the user froze in eval mode inside a training model stays frozen."""
    from ginvariance.metrics import eval_mode
    from ginvariance.spectral import _common

    assert _common.eval_mode is eval_mode  # one eval mode for metrics and spectral
    net = _Net().train()
    net.bn.eval()
    with eval_mode(net):
        assert not any(m.training for m in net.modules())
    assert net.training and net.lin.training and not net.bn.training


def test_measures_accept_a_plain_callable() -> None:
    from ginvariance.metrics import functional

    torch.manual_seed(0)
    weight = torch.randn(16, 3)

    def model(x: torch.Tensor) -> torch.Tensor:  # no .training, no .eval()
        return x.flatten(1) @ weight

    x = torch.randn(5, 1, 4, 4)
    suite = functional.invariance_suite(model, x, "c4", saliency=True)
    assert suite["pdi"] is not None and suite["pdi"] > 0
    assert suite["sis"] is not None and suite["sis"] < 1


def _attribute() -> None:
    from ginvariance.metrics.attribution import sis_attribution

    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    sis_attribution(model, torch.randn(2, 1, 4, 4), "c4", ("integrated_gradients",))


def _load_mnist1d() -> None:
    from ginvariance.data import datasets

    datasets._mnist1d_arrays.__wrapped__()  # past the cache, which other tests may have filled


@pytest.mark.parametrize(
    ("module", "extra", "call"),
    [("captum", "attribution", _attribute), ("mnist1d", "mnist1d", _load_mnist1d)],
)
def test_a_missing_extra_is_one_line_naming_it(
    module: str, extra: str, call: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    from ginvariance.errors import MissingExtraError

    for name in [m for m in sys.modules if m == module or m.startswith(module + ".")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, module, None)  # import now fails as if not installed
    with pytest.raises(MissingExtraError) as info:
        call()  # type: ignore[operator]
    message = str(info.value)
    assert "\n" not in message and f"ginvariance[{extra}]" in message


def test_figures_leave_the_users_matplotlib_backend_alone() -> None:
    """A notebook user's backend is not switched to Agg behind their back."""
    import matplotlib

    from ginvariance.integrations.plots import plot_layerwise
    from ginvariance.report.figures import _png, subplots

    before = matplotlib.get_backend()
    try:
        matplotlib.use("pdf")
        rows = [{"layer": "lin", "type": "Linear", "li": 0.5, "equivariance_error": None}]
        assert plot_layerwise(rows)[:4] == b"\x89PNG"
        fig, ax = subplots(figsize=(2, 2))
        ax.plot([0, 1])
        assert _png(fig)[:4] == b"\x89PNG"
        assert matplotlib.get_backend() == "pdf"
    finally:
        matplotlib.use(before)
