"""The invariance regularizer: a loss that penalizes a model's variation over an orbit.

On the logits ``z_g = f(g·x)`` of ``m`` group elements ``g_0 = e, g_1, ...`` per sample, each
penalty is a measure of docs/definitions.md on the batch: ``"logit"`` (the default) is
``li_within``, ``(1/m) Σ_g ‖z_g − z̄‖²`` averaged over the samples; ``"js"`` is ``pdi``;
``"logit-normalized"`` is the batch's ``li``, in ``[0, 1]``. ``"logit"`` scales as ``α²`` under
``f → α·f``, so a net can lower it by shrinking its logits; ``"logit-normalized"`` is unchanged
by ``f → α·f + c`` (:func:`~ginvariance.metrics.functional.li_from_logits`), and its denominator
is not detached: with ``sg[spread]`` the gradient would be the ``"logit"`` one at weight
``λ / spread``, which rewards shrinking. ``"js"`` needs a far larger ``λ`` (docs/calibration.md).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ginvariance.checks import check_logits
from ginvariance.errors import ModelError
from ginvariance.groups import Group, get_group
from ginvariance.metrics.functional import li_from_logits, li_within_from_logits, pdi_from_logits
from ginvariance.training.config import ORBITS, PENALTIES, check_choice


class InvarianceRegularizer(nn.Module):
    """A loss on the logits of an orbit: zero exactly when they do not vary over it.

    Parameters
    ----------
    group:
        The group (a :class:`~ginvariance.groups.Group` or its name).
    penalty:
        ``"logit"``, ``"js"`` or ``"logit-normalized"`` (the module docstring has each).
    orbit:
        ``"full"``: every group element, ``m = n``. ``"sample"``: the identity and one uniformly
        drawn other element per sample, ``m = 2``: an unbiased estimate (``"logit"``: up to a
        constant, ``E_g ‖z_e − z_g‖²/4``) at two forward passes instead of ``n``.

    Examples
    --------
    >>> import torch
    >>> reg = InvarianceRegularizer("c4")
    >>> x = torch.randn(5, 8, 8)
    >>> model = lambda u: u.flatten(1)[:, :3]
    >>> logits = model(reg.orbit_inputs(x)).reshape(reg.orbit_size, 5, 3)
    >>> bool(reg(logits) > 0)
    True
    """

    def __init__(self, group: Group | str, penalty: str = "logit", orbit: str = "full") -> None:
        super().__init__()
        check_choice("penalty", penalty, PENALTIES)
        check_choice("orbit", orbit, ORBITS)
        self.group = get_group(group)
        self.penalty = penalty
        self.orbit = orbit

    @property
    def orbit_size(self) -> int:
        """``m``: the number of transformed copies of each sample in :meth:`orbit_inputs`."""
        return self.group.order if self.orbit == "full" else 2

    def extra_repr(self) -> str:
        return f"group={self.group.name!r}, penalty={self.penalty!r}, orbit={self.orbit!r}"

    def orbit_inputs(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """The inputs to run the model on, ``(m·B, *S)``, group-major, identity block first:
        ``group.orbit(x)``, or for ``"sample"`` ``cat([x, g_b·x_b])`` with each ``g_b`` drawn
        uniformly from the non-identity elements (by ``generator``)."""
        if self.orbit == "full":
            return self.group.orbit(x)
        n = self.group.order
        if n == 1:
            return torch.cat([x, x], dim=0)
        # drawn on the generator's device (the CPU by default), applied where x is
        index = (1 + torch.randint(0, n - 1, (x.shape[0],), generator=generator)).to(x.device)
        return torch.cat([x, self.group.act_per_sample(x, index)], dim=0)

    def forward(self, logits_orbit: Tensor) -> Tensor:
        """The penalty, a scalar, of logits ``(m, B, K)``: block ``i`` holds those of the
        ``i``-th transformed copy of the batch, ``model(orbit_inputs(x)).reshape(m, B, K)``."""
        if logits_orbit.ndim != 3:
            raise ModelError(
                "the regularizer takes logits of shape (m, B, K), got "
                f"{tuple(logits_orbit.shape)}; reshape model(orbit_inputs(x)) to (m, B, K)"
            )
        if self.penalty == "logit":
            return li_within_from_logits(logits_orbit)
        if self.penalty == "logit-normalized":
            return li_from_logits(logits_orbit)
        return pdi_from_logits(logits_orbit)


def regularized_loss(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    regularizer: InvarianceRegularizer,
    lam: float,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """``(total, ce, penalty)``, three scalars with ``total = ce + lam · penalty``.

    One forward pass over ``regularizer.orbit_inputs(x)`` ``(m·B, *S)``: the cross-entropy on
    the identity block (the first ``B`` rows), the penalty on all ``m`` blocks.
    """
    return regularized_terms(model, x, y, regularizer, lam, generator)[:3]


def regularized_terms(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    regularizer: InvarianceRegularizer,
    lam: float,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """:func:`regularized_loss` plus the orbit logits ``(m, B, K)`` it computed."""
    batch = x.shape[0]
    m = regularizer.orbit_size
    logits = check_logits(model(regularizer.orbit_inputs(x, generator)), m * batch)
    logits_orbit = logits.reshape(m, batch, logits.shape[1])
    ce = F.cross_entropy(logits_orbit[0], y)
    penalty = regularizer(logits_orbit)
    return ce + lam * penalty, ce, penalty, logits_orbit
