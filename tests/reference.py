"""Slow, obviously correct reference implementations of the measures.

One sample and one group element at a time, in float64, with explicit sums. The fast
batched code in ``ginvariance.metrics`` is checked against these.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from ginvariance.groups import Group


def as_float64(model: nn.Module) -> nn.Module:
    m = copy.deepcopy(model).double()
    m.eval()
    return m


def _logits_one(model: nn.Module, group: Group, x1: torch.Tensor, i: int) -> torch.Tensor:
    return model(group.act(x1.unsqueeze(0), i))[0]


def _entropy(p: list[float]) -> float:
    return -sum(v * math.log(v) for v in p if v > 0)


def reference_measures(
    model: nn.Module, x: torch.Tensor, group: Group, y: torch.Tensor | None = None
) -> dict[str, float]:
    """pdi, li, li_within, sis, accuracy, orbit_accuracy, orbit_consistency by explicit loops."""
    model = as_float64(model)
    x = x.double()
    n, N = group.order, x.shape[0]
    all_logits: list[list[list[float]]] = []  # [sample][g][k]
    pdi_values, sis_values = [], []
    consistent = correct = orbit_correct = 0
    for b in range(N):
        zs = []
        with torch.no_grad():
            for i in range(n):
                zs.append([float(v) for v in _logits_one(model, group, x[b], i)])
        all_logits.append(zs)
        # predictive distributions, entropies
        ps = []
        for z in zs:
            m = max(z)
            e = [math.exp(v - m) for v in z]
            s = sum(e)
            ps.append([v / s for v in e])
        K = len(ps[0])
        pbar = [sum(ps[i][k] for i in range(n)) / n for k in range(K)]
        pdi_values.append(_entropy(pbar) - sum(_entropy(p) for p in ps) / n)
        preds = [max(range(K), key=lambda k, z=z: z[k]) for z in zs]
        consistent += all(p == preds[0] for p in preds)
        if y is not None:
            correct += preds[0] == int(y[b])
            orbit_correct += sum(p == int(y[b]) for p in preds) / n
        # saliency
        c = preds[0]
        maps = []
        for i in range(n):
            u = group.act(x[b].unsqueeze(0), i).clone().requires_grad_(True)
            z = model(u)[0, c]
            (g,) = torch.autograd.grad(z, u)
            maps.append(group.act_inverse(g, i)[0].flatten())
        cos = []
        for i in range(1, n):
            a, r = maps[i], maps[0]
            na, nr = math.sqrt(float((a * a).sum())), math.sqrt(float((r * r).sum()))
            if na == 0 and nr == 0:
                cos.append(1.0)
            elif na == 0 or nr == 0:
                cos.append(0.0)
            else:
                cos.append(float((a * r).sum()) / (na * nr))
        sis_values.append(sum(cos) / len(cos) if cos else 1.0)
    # pooled logit invariance
    K = len(all_logits[0][0])
    mu = [sum(all_logits[b][i][k] for b in range(N) for i in range(n)) / (N * n) for k in range(K)]
    within = total = 0.0
    for b in range(N):
        zbar = [sum(all_logits[b][i][k] for i in range(n)) / n for k in range(K)]
        for i in range(n):
            within += sum((all_logits[b][i][k] - zbar[k]) ** 2 for k in range(K))
            total += sum((all_logits[b][i][k] - mu[k]) ** 2 for k in range(K))
    out = {
        "pdi": sum(pdi_values) / N,
        "li": within / total if total > 0 else 0.0,
        "li_within": within / (N * n),
        "sis": sum(sis_values) / N,
        "orbit_consistency": consistent / N,
    }
    if y is not None:
        out["accuracy"] = correct / N
        out["orbit_accuracy"] = orbit_correct / N
    return out


class GroupAveraged(nn.Module):
    """Reference group averaging: the mean of the logits over the orbit, element by element."""

    def __init__(self, model: nn.Module, group: Group) -> None:
        super().__init__()
        self.model = model
        self.group = group

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.group.resolve(tuple(x.shape[1:]))
        return torch.stack([self.model(g.act(x, i)) for i in range(g.order)]).mean(0)
