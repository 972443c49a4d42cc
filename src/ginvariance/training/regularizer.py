"""The invariance regularizer: a loss that penalizes a model's variation over an orbit.

For one input ``x`` and a list of ``m`` group elements ``g_0 = e, g_1, ...`` the model's
logits ``z_g = f(g·x)`` are penalized for how much they vary over the ``g``:

``"logit"`` (the default)
    ``(1/m) Σ_g ‖z_g − z̄‖²`` with ``z̄ = (1/m) Σ_g z_g``: the squared deviation of the
    logits from their orbit mean (the numerator of the logit invariance error ``li``).
``"js"``
    ``H(p̄) − (1/m) Σ_g H(p_g)`` with ``p_g = softmax(z_g)``, ``p̄ = (1/m) Σ_g p_g``: the
    generalized Jensen–Shannon divergence of the predictive distributions (``pdi``).
``"logit-normalized"``
    the ``"logit"`` penalty of the batch divided by the spread of the batch's logits,
    ``Σ_b Σ_g ‖z_g(b) − z̄(b)‖² / Σ_b Σ_g ‖z_g(b) − μ‖²`` with ``μ`` the mean over the batch
    and the orbit: the logit invariance error ``li`` of the batch, in ``[0, 1]``.

``"logit"`` and ``"js"`` are averaged over the samples of the batch; ``"logit-normalized"``
is a ratio of sums over the batch.

Why ``"logit-normalized"``: the ``"logit"`` penalty scales with the logits, ``f → α·f``
multiplies it by ``α²``, so a network can lower it by shrinking its logits, and a
regularized net that looks robust off-distribution may only have smaller logits. The
normalized penalty is unchanged by ``f → α·f + c``, and so is its gradient's verdict: the
derivative along the shrinking direction, ``Σ z · ∂R/∂z``, is exactly 0 (Euler's theorem for
a function of degree 0), so no step of training is rewarded for shrinking the logits.

Why the denominator is *not* detached: with ``sg[spread]`` the value is still scale-free,
but the gradient is the ``"logit"`` gradient at the weight ``λ / spread``, which rewards
shrinking, more strongly the smaller the logits get, and can collapse the network to a
constant.

Its ``λ`` (``CALIBRATED_LAM["logit-normalized"]``) was calibrated on digits/C4 as the largest
value that stays within about one point of the augmented net's accuracy; the README's study
reports what it buys (the calibration runs: docs/calibration.md).

Why ``"logit"`` is the default: the Jensen–Shannon penalty is bounded by ``log m`` and its
gradient fades as the softmax saturates, so it leaves the logits free to vary wherever the
prediction is already confident, which is where off-distribution inputs expose learned
invariance; on digits/C4 it needs a far larger ``λ`` than the logit penalty for the same
effect (docs/calibration.md has the runs).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ginvariance.checks import check_logits
from ginvariance.errors import ConfigError, ModelError
from ginvariance.groups import Group, get_group
from ginvariance.metrics.functional import li_from_logits, li_within_from_logits, pdi_from_logits
from ginvariance.training.config import ORBITS, PENALTIES


class InvarianceRegularizer(nn.Module):
    """A loss on the logits of an orbit: zero exactly when they do not vary over it.

    Parameters
    ----------
    group:
        The group (a :class:`~ginvariance.groups.Group` or its name).
    penalty:
        ``"logit"`` (squared deviation from the orbit mean), ``"js"`` (generalized
        Jensen–Shannon divergence of the softmax outputs) or ``"logit-normalized"`` (the
        ``"logit"`` penalty divided by the spread of the batch's logits: invariant to their
        scale); see the module docstring.
    orbit:
        ``"full"``: every group element, ``m = n``. ``"sample"``: the identity and one
        non-identity element drawn uniformly per sample, ``m = 2`` — an unbiased estimate
        (up to a constant factor for ``"logit"``: ``E_g ‖z_e − z_g‖²/4``) that costs two
        forward passes instead of ``n``.

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
        if penalty not in PENALTIES:
            raise ConfigError(f"unknown penalty {penalty!r}; choose one of: {', '.join(PENALTIES)}")
        if orbit not in ORBITS:
            raise ConfigError(f"unknown orbit {orbit!r}; choose one of: {', '.join(ORBITS)}")
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
        """The inputs to run the model on, ``(m·B, *S)``, group-major, identity block first.

        ``"full"``: ``group.orbit(x)``. ``"sample"``: ``cat([x, g_b·x_b])`` with ``g_b``
        drawn uniformly from the non-identity elements for each sample ``b`` (from
        ``generator``).
        """
        if self.orbit == "full":
            return self.group.orbit(x)
        n = self.group.order
        if n == 1:
            return torch.cat([x, x], dim=0)
        # drawn on the generator's device (the CPU by default), applied where x is
        index = 1 + torch.randint(0, n - 1, (x.shape[0],), generator=generator)
        index = index.to(x.device)
        return torch.cat([x, self.group.act_per_sample(x, index)], dim=0)

    def forward(self, logits_orbit: Tensor) -> Tensor:
        """The penalty, a scalar: the mean over samples of the per-sample penalty.

        Parameters
        ----------
        logits_orbit:
            ``(m, B, K)``: block ``i`` holds the logits of the ``i``-th transformed copy of
            the batch (``model(orbit_inputs(x)).reshape(m, B, K)``).
        """
        if logits_orbit.ndim != 3:
            raise ModelError(
                "the regularizer takes logits of shape (m, B, K), got "
                f"{tuple(logits_orbit.shape)}; reshape model(orbit_inputs(x)) to (m, B, K)"
            )
        if self.penalty == "logit":
            return li_within_from_logits(logits_orbit)
        if self.penalty == "logit-normalized":
            return li_from_logits(logits_orbit)
        return pdi_from_logits(logits_orbit)  # "js", with pdi's 0·log 0 = 0 guard


#: The ``"logit-normalized"`` penalty: the batch's logit invariance error ``W / S``
#: (:func:`ginvariance.metrics.functional.li_from_logits`, whose docstring has its gradient).
normalized_logit_penalty = li_from_logits


def regularized_loss(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    regularizer: InvarianceRegularizer,
    lam: float,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Cross-entropy plus ``λ`` times the invariance penalty, from one forward pass.

    The model runs once on ``regularizer.orbit_inputs(x)`` ``(m·B, *S)``; the
    cross-entropy is taken on the identity block (the first ``B`` rows) only, the penalty
    on all ``m`` blocks.

    Returns
    -------
    (total, ce, penalty):
        Three scalars, ``total = ce + lam · penalty``.
    """
    total, ce, penalty, _ = regularized_terms(model, x, y, regularizer, lam, generator)
    return total, ce, penalty


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


__all__ = ["InvarianceRegularizer", "normalized_logit_penalty", "regularized_loss"]
