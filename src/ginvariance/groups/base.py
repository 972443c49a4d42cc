"""Finite groups acting on batches ``(B, *S)`` through the trailing (spatial) axes of ``S``,
so one group serves ``(B, H, W)`` and ``(B, C, H, W)`` alike; each knows its inverse actions
and builds a batch's whole orbit as one group-major tensor ``(n·B, *S)``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import torch

from ginvariance.checks import channel_last_fix, check_int
from ginvariance.errors import GroupActionError, GroupError

Action = Callable[[torch.Tensor], torch.Tensor]


class Group:
    """A finite group of transformations with exact (or stated-tolerance) inverses.

    Subclasses implement :meth:`_act`, :meth:`_act_inverse` and may override
    :meth:`check_shape` and :meth:`resolve`.

    Attributes
    ----------
    name:
        The name under which :func:`ginvariance.groups.get_group` finds the group.
    elements:
        One readable name per group element; ``elements[0]`` is the identity.
    exact:
        True when every action is an exact permutation of the input's entries, so that a
        genuinely invariant model scores invariance error 0 up to rounding.
    tolerance:
        For groups that are not exact, the invariance error (``pdi``, nats) measured on a
        model that is invariant by construction; ``0.0`` for exact groups.
    """

    name: str = "group"
    exact: bool = True
    tolerance: float = 0.0

    def __init__(self, elements: Sequence[str]) -> None:
        if len(elements) == 0:
            raise GroupError(f"group {self.name!r} has no elements; give it at least the identity")
        self.elements: list[str] = list(elements)

    # -- the interface -------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.elements)

    @property
    def order(self) -> int:
        """Number of group elements ``n``."""
        return len(self.elements)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, order={self.order})"

    def check_shape(self, sample_shape: Sequence[int]) -> None:
        """Raise :class:`GroupActionError` if the group cannot act on one sample of this shape."""

    def resolve(self, sample_shape: Sequence[int]) -> Group:
        """Return the group bound to inputs of ``sample_shape`` (after checking the shape).

        Most groups do not depend on the input size and return themselves; groups such as
        "all cyclic translations" need the size to list their elements.
        """
        self.check_shape(tuple(sample_shape))
        return self

    def act(self, x: torch.Tensor, i: int) -> torch.Tensor:
        """Apply group element ``i`` to every sample of the batch ``x`` ``(B, *S)``."""
        self._check_index(i)
        self.check_shape(tuple(x.shape[1:]))
        return self._act(x, i)

    def act_inverse(self, x: torch.Tensor, i: int) -> torch.Tensor:
        """Apply the inverse of group element ``i`` to every sample of ``x``."""
        self._check_index(i)
        self.check_shape(tuple(x.shape[1:]))
        return self._act_inverse(x, i)

    def orbit(self, x: torch.Tensor) -> torch.Tensor:
        """The whole orbit of a batch: ``(B, *S)`` → ``(n·B, *S)``, group-major."""
        self.check_shape(tuple(x.shape[1:]))
        return torch.cat([self._act(x, i) for i in range(self.order)], dim=0)

    def inverse_orbit(self, y: torch.Tensor) -> torch.Tensor:
        """Map each block of a group-major orbit tensor back by its inverse action.

        ``y`` has shape ``(n·B, *S)`` (for example saliency maps of an orbit); block ``i``
        is mapped by ``g_i⁻¹``. The result has the same shape.
        """
        n = self.order
        if y.shape[0] % n != 0:
            raise GroupActionError(
                f"an orbit tensor must have n·B rows with n={n}, got {y.shape[0]}; "
                "pass the output of group.orbit()"
            )
        self.check_shape(tuple(y.shape[1:]))
        blocks = y.reshape(n, y.shape[0] // n, *y.shape[1:])
        return torch.cat([self._act_inverse(blocks[i], i) for i in range(n)], dim=0)

    def act_per_sample(self, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Apply element ``index[b]`` to sample ``b`` (data augmentation).

        Loops over the ``n`` group elements, never over samples.
        """
        self.check_shape(tuple(x.shape[1:]))
        if index.shape != (x.shape[0],):
            raise GroupActionError(
                f"index must have shape ({x.shape[0]},), got {tuple(index.shape)}"
            )
        if index.numel() and (int(index.min()) < 0 or int(index.max()) >= self.order):
            raise GroupActionError(
                f"index holds elements {int(index.min())}..{int(index.max())} but group "
                f"{self.name!r} has elements 0..{self.order - 1}; draw them with group.sample()"
            )
        out = torch.empty_like(x)
        for i in range(self.order):
            mask = index == i
            if bool(mask.any()):
                out[mask] = self._act(x[mask], i)
        return out

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw one group element per sample, uniformly: a LongTensor ``(batch_size,)``."""
        return torch.randint(0, self.order, (batch_size,), generator=generator)

    # -- self-checks ---------------------------------------------------------------------
    def check(self, x: torch.Tensor, atol: float | None = None) -> dict[str, float]:
        """Check that this is a group on the sample ``x`` and report the largest errors.

        Checks ``g⁻¹·(g·x) = x`` for every element, that ``g_0`` is the identity, and — for
        exact groups — closure: ``g_j·(g_i·x)`` equals ``g_k·x`` for some ``k``.
        Raises :class:`GroupError` when an error exceeds ``atol`` (default for exact groups:
        ten times the rounding of ``x``'s dtype) and returns the measured errors otherwise.
        Interpolated groups lose what leaves the image, so their errors are only reported,
        unless ``atol`` is given.
        """
        if atol is None:
            atol = 10 * torch.finfo(x.dtype).eps if self.exact else float("inf")
        scale = float(x.abs().max().clamp_min(1.0))
        identity_error = float((self.act(x, 0) - x).abs().max()) / scale
        inverse_error = max(
            float((self.act_inverse(self.act(x, i), i) - x).abs().max()) / scale
            for i in range(self.order)
        )
        closure_error = 0.0
        if self.exact:  # every g_i·(g_j·x) is some g_k·x
            closure_error = float(self.composition_errors(x).amin(dim=-1).max()) / scale
        errors = {"identity": identity_error, "inverse": inverse_error, "closure": closure_error}
        for what, err in errors.items():
            if err > atol:
                raise GroupError(
                    f"group {self.name!r} fails its {what} check (error {err:.3g} > {atol:.3g}); "
                    "check that the first element is the identity and that each inverse "
                    "undoes its action"
                )
        return errors

    def composition_errors(self, x: torch.Tensor) -> torch.Tensor:
        """``E[i, j, k] = max |g_i·(g_j·x) − g_k·x|`` over the entries of ``x``: ``(n, n, n)``.

        ``E[i, j, k] = 0`` says that ``g_i g_j = g_k`` on ``x``; :meth:`check` reads closure
        from it and :meth:`cayley_table` the multiplication table.
        """
        n = self.order
        images = torch.stack([self.act(x, k) for k in range(n)])  # (n, B, *S)
        errors = torch.empty(n, n, n, dtype=x.dtype, device=x.device)
        for i in range(n):
            for j in range(n):
                composed = self.act(images[j], i)
                errors[i, j] = (images - composed).flatten(1).abs().amax(dim=1)
        return errors

    def cayley_table(self, probe: torch.Tensor | None = None) -> torch.Tensor:
        """The multiplication table ``T`` ``(n, n)``, a LongTensor: ``g_i g_j = g_{T[i, j]}``.

        Read from the action on ``probe`` (default: a random float64 ``5×5`` image, seeded, on
        the CPU whatever the default device, so that a model built on ``"meta"`` gets real
        values), on which the elements must act as distinct, exactly composing permutations:
        ``act(act(probe, j), i) = act(probe, T[i, j])``. Raises :class:`GroupError` otherwise.
        """
        if probe is None:
            gen = torch.Generator().manual_seed(0)
            probe = torch.rand(1, 5, 5, generator=gen, dtype=torch.float64, device="cpu")
        exact = self.composition_errors(probe) == 0  # (n, n, n)
        if not bool((exact.sum(dim=-1) == 1).all()):
            raise GroupError(
                f"group {self.name!r} has no multiplication table on this probe: its elements "
                "do not act as distinct, exactly composing permutations of it"
            )
        return exact.to(torch.long).argmax(dim=-1).cpu()

    # -- for subclasses ------------------------------------------------------------------
    def _act(self, x: torch.Tensor, i: int) -> torch.Tensor:
        raise NotImplementedError

    def _act_inverse(self, x: torch.Tensor, i: int) -> torch.Tensor:
        raise NotImplementedError

    def _check_index(self, i: int) -> None:
        if not 0 <= i < self.order:
            raise GroupError(f"group {self.name!r} has elements 0..{self.order - 1}, got index {i}")


def _require_spatial(group: Group, sample_shape: Sequence[int], ndim: int) -> None:
    if len(sample_shape) < ndim:
        raise GroupActionError(
            f"group {group.name!r} acts on the last {ndim} axes of each sample, but samples "
            f"have shape {tuple(sample_shape)}; give inputs of shape (N, ..., "
            + ("H, W)" if ndim == 2 else "L)")
        )


def _require_square(group: Group, sample_shape: Sequence[int]) -> None:
    _require_spatial(group, sample_shape, 2)
    h, w = sample_shape[-2], sample_shape[-1]
    layout = channel_last_fix(sample_shape)
    if layout is not None:
        raise GroupActionError(f"group {group.name!r} rotates images; {layout}")
    if h != w:
        raise GroupActionError(
            f"group {group.name!r} rotates images and needs square ones, got {h}×{w}; "
            "pad or crop the images to a square, or use a group such as 'flip' or 'shift'"
        )


class C4(Group):
    """Rotations by multiples of 90° (``torch.rot90`` on the last two axes): exact."""

    name = "c4"

    def __init__(self) -> None:
        super().__init__(["e", "r90", "r180", "r270"])

    def check_shape(self, sample_shape: Sequence[int]) -> None:
        _require_square(self, sample_shape)

    def _act(self, x: torch.Tensor, i: int) -> torch.Tensor:
        return torch.rot90(x, i, dims=(-2, -1))

    def _act_inverse(self, x: torch.Tensor, i: int) -> torch.Tensor:
        return torch.rot90(x, -i, dims=(-2, -1))


class D4(Group):
    """The dihedral group of the square: rotations by 90° and reflections; exact.

    Element ``i`` is ``r^(i mod 4)`` for ``i < 4`` and ``r^(i mod 4) ∘ m`` for ``i ≥ 4``,
    where ``m`` mirrors the last axis (left–right) and ``r`` rotates by 90°.
    """

    name = "d4"

    def __init__(self) -> None:
        super().__init__(["e", "r90", "r180", "r270", "m", "r90m", "r180m", "r270m"])

    def check_shape(self, sample_shape: Sequence[int]) -> None:
        _require_square(self, sample_shape)

    def _act(self, x: torch.Tensor, i: int) -> torch.Tensor:
        if i >= 4:
            x = torch.flip(x, dims=(-1,))
        return torch.rot90(x, i % 4, dims=(-2, -1))

    def _act_inverse(self, x: torch.Tensor, i: int) -> torch.Tensor:
        return self._act(x, i if i >= 4 else -i % 4)  # (r^k m)⁻¹ = r^k m, (r^k)⁻¹ = r^(4−k)


class Flip(Group):
    """Left–right mirroring of the last axis: the group of order 2; exact."""

    name = "flip"

    def __init__(self) -> None:
        super().__init__(["e", "m"])

    def check_shape(self, sample_shape: Sequence[int]) -> None:
        _require_spatial(self, sample_shape, 1)

    def _act(self, x: torch.Tensor, i: int) -> torch.Tensor:
        return torch.flip(x, dims=(-1,)) if i == 1 else x

    _act_inverse = _act  # every element is its own inverse


class CyclicShift(Group):
    """Cyclic translations of the last ``ndim`` axes (``torch.roll``); exact.

    ``ndim=2`` translates images (the built-in ``shift``), ``ndim=1`` shifts 1-D signals
    (``cyclic1d``); any ``ndim`` works the same way.

    Parameters
    ----------
    shifts:
        The translations, one tuple of ``ndim`` integers each (a plain integer for
        ``ndim=1``), the first one all zeros. ``None`` (the default) means every translation
        of the input; the group is then bound to a size by :meth:`resolve`, and until then it
        has no elements: :attr:`order` and every action raise :class:`GroupActionError`. A
        subset that is not closed under composition is allowed for measuring, but
        :meth:`check` reports it as failing closure.
    step:
        With ``shifts=None``: translations by multiples of ``step`` only (the subgroup
        ``Z_(L_1/step) × … × Z_(L_ndim/step)``); every side must be divisible by ``step``.
    ndim:
        How many trailing axes are translated.
    name:
        The name :func:`~ginvariance.groups.get_group` knows it by; default ``"shift"`` for
        ``ndim=2``, ``"cyclic1d"`` for ``ndim=1``.
    """

    def __init__(
        self,
        shifts: Sequence[Sequence[int] | int] | None = None,
        step: int = 1,
        *,
        ndim: int = 2,
        name: str | None = None,
    ) -> None:
        self.name = name or {1: "cyclic1d", 2: "shift"}.get(ndim, f"shift{ndim}d")
        self.ndim = check_int(ndim, f"{self.name} ndim", error=GroupError)
        self.step = check_int(step, f"{self.name} step", error=GroupError)
        self._size: tuple[int, ...] | None = None
        self.shifts: list[tuple[int, ...]] | None = None
        if shifts is None:
            super().__init__(["e"])
            self.elements = []  # no elements until bound to a size
            return
        listed = [tuple(int(v) for v in (s if isinstance(s, Sequence) else (s,))) for s in shifts]
        if not listed or listed[0] != (0,) * ndim or any(len(s) != ndim for s in listed):
            raise GroupError(
                f"{self.name} takes translations of {ndim} integers each, the first one the "
                f"identity {(0,) * ndim if ndim > 1 else 0}"
            )
        self.shifts = listed
        super().__init__([f"t{','.join(map(str, s))}" for s in listed])

    @property
    def order(self) -> int:
        """Number of group elements ``n``; an unbound group has none yet and raises."""
        if self.shifts is None:
            raise GroupActionError(
                f"group {self.name!r} lists all translations of its input and must be bound to "
                "an input size first: call group.resolve(x.shape[1:])"
            )
        return len(self.elements)

    def __repr__(self) -> str:
        if self.shifts is None:
            return f"{type(self).__name__}(name={self.name!r}, unbound)"
        return super().__repr__()

    def check_shape(self, sample_shape: Sequence[int]) -> None:
        _require_spatial(self, sample_shape, self.ndim)
        size = tuple(sample_shape[-self.ndim :])
        if self.shifts is None and any(side % self.step for side in size):
            raise GroupActionError(
                f"group {self.name!r} translates by multiples of {self.step}, which must divide "
                f"the input size {'×'.join(map(str, size))}; choose a step that divides it"
            )
        if self._size is not None and size != self._size:
            raise GroupActionError(
                f"group {self.name!r} was bound to inputs of size "
                f"{'×'.join(map(str, self._size))}, got {'×'.join(map(str, size))}; resolve the "
                "group again for this size"
            )

    def resolve(self, sample_shape: Sequence[int]) -> Group:
        self.check_shape(tuple(sample_shape))
        if self.shifts is not None:
            return self
        size = tuple(int(v) for v in sample_shape[-self.ndim :])
        grid = itertools.product(*(range(0, side, self.step) for side in size))
        bound = type(self).__new__(type(self))
        CyclicShift.__init__(bound, list(grid), ndim=self.ndim, name=self.name)
        bound._size = size
        return bound

    # every public action reads order first, which refuses an unbound group
    def _act(self, x: torch.Tensor, i: int) -> torch.Tensor:
        assert self.shifts is not None
        return torch.roll(x, shifts=self.shifts[i], dims=tuple(range(-self.ndim, 0)))

    def _act_inverse(self, x: torch.Tensor, i: int) -> torch.Tensor:
        assert self.shifts is not None
        return torch.roll(x, tuple(-v for v in self.shifts[i]), dims=tuple(range(-self.ndim, 0)))


class Shift2d(CyclicShift):
    """Cyclic 2-D translations: :class:`CyclicShift` with ``ndim=2`` (the old name, kept)."""

    def __init__(self, shifts: Sequence[tuple[int, int]] | None = None, step: int = 1) -> None:
        super().__init__(shifts, step, ndim=2)


class Cyclic1d(CyclicShift):
    """Cyclic shifts of 1-D signals: :class:`CyclicShift` with ``ndim=1`` (the old name, kept)."""

    def __init__(self, shifts: Sequence[int] | None = None, step: int = 1) -> None:
        super().__init__(shifts, step, ndim=1)


class CustomGroup(Group):
    """A user-defined group from pairs of (action, inverse action).

    The first pair must be the identity. Each action maps a batch ``(B, *S)`` to a batch
    of the same shape. Call :meth:`check` on a sample input to verify the group laws.

    Examples
    --------
    >>> import torch
    >>> g = CustomGroup("negate", [(lambda x: x, lambda x: x), (lambda x: -x, lambda x: -x)])
    >>> g.orbit(torch.ones(2, 3)).shape
    torch.Size([4, 3])
    """

    def __init__(
        self,
        name: str,
        actions: Sequence[tuple[Action, Action]],
        element_names: Sequence[str] | None = None,
        exact: bool = True,
        tolerance: float = 0.0,
    ) -> None:
        if len(actions) == 0:
            raise GroupError("a custom group needs at least one (action, inverse) pair")
        for k, pair in enumerate(actions):
            if len(pair) != 2 or not all(callable(f) for f in pair):
                raise GroupError(
                    f"element {k} of a custom group must be a pair of callables "
                    "(action, inverse action)"
                )
        self.name = name
        self.exact = exact
        self.tolerance = tolerance
        self._actions = list(actions)
        default = ["e", *(f"g{k}" for k in range(1, len(actions)))]
        names = default if element_names is None else list(element_names)
        if len(names) != len(actions):
            raise GroupError("give one element name per (action, inverse) pair")
        super().__init__(names)

    def _act(self, x: torch.Tensor, i: int) -> torch.Tensor:
        return self._actions[i][0](x)

    def _act_inverse(self, x: torch.Tensor, i: int) -> torch.Tensor:
        return self._actions[i][1](x)
