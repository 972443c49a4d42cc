"""Group averaging: make any model exactly invariant by averaging its logits over the orbit."""

from __future__ import annotations

from torch import Tensor, nn

from ginvariance.checks import check_logits
from ginvariance.errors import ModelError
from ginvariance.groups import Group, get_group


class Symmetrized(nn.Module):
    """``f̄(x) = (1/n) Σ_g f(g·x)``: the orbit average of a model's logits.

    Invariant by construction: ``g'·x`` has the same orbit as ``x`` (permuted), so the
    average is the same up to the order of a floating-point sum. One batched forward of the
    wrapped model over the orbit ``(n·B, *S)``. The group is bound to each input's shape
    (``group.resolve(x.shape[1:])``), so ``shift`` and ``cyclic1d`` work at any size.

    Parameters
    ----------
    model:
        Any module mapping ``(B, *S)`` → ``(B, K)``; its parameters are this module's.
    group:
        A group or its name.
    """

    def __init__(self, model: nn.Module, group: Group | str) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise ModelError(
                f"symmetrize needs an nn.Module, got {type(model).__name__}; wrap your function "
                "in an nn.Module"
            )
        self.model = model
        self.group = get_group(group)

    def forward(self, x: Tensor) -> Tensor:
        group = self.group.resolve(tuple(x.shape[1:]))
        n, b = group.order, x.shape[0]
        z = check_logits(self.model(group.orbit(x)), n * b)
        return z.reshape(n, b, z.shape[1]).mean(dim=0)

    def extra_repr(self) -> str:
        return f"group={self.group.name}"


def symmetrize(model: nn.Module, group: Group | str) -> nn.Module:
    """Wrap ``model`` so that its logits are averaged over the orbit of ``group``.

    ``logits(x) = (1/n) Σ_g model(g·x)``; see :class:`Symmetrized`.

    Examples
    --------
    >>> import torch
    >>> from ginvariance.models import CNN
    >>> net = symmetrize(CNN((1, 8, 8), 10), "c4").double()
    >>> x = torch.rand(2, 1, 8, 8, dtype=torch.float64)
    >>> bool((net(x) - net(torch.rot90(x, 1, (-2, -1)))).abs().max() < 1e-12)
    True
    """
    return Symmetrized(model, group)
