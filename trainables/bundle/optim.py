"""SGD over a bundle with every member's own learning rate, momentum and weight decay.

A bundled parameter holds every member's tensor (member-major along dim 0), so torch's SGD, whose
settings are per parameter group, cannot give members their own. :class:`MemberSGD` takes them as
vectors over the members and does, member by member, what ``torch.optim.SGD`` (dampening 0) does:
``d = g + wd * p``; ``buf = d`` at the first step, else ``buf = momentum * buf + d``; Nesterov
``d = d + momentum * buf``, else ``d = buf``; ``p -= lr * d``. The learning rates follow the run's
schedule as one factor for all members (:meth:`MemberSGD.set_factor`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import Tensor, nn

__all__ = ["MemberSGD"]


class MemberSGD:
    """Per-member SGD over the parameters of a k-member bundle (a few dozen tensors, each (k * n, ...))."""

    def __init__(self, params: Iterable[tuple[nn.Parameter, bool]], k: int, lr: Sequence[float],
                 momentum: Sequence[float], weight_decay: Sequence[float], nesterov: Sequence[bool]) -> None:
        """``params``: (parameter, decays) pairs; the settings: one value per member."""
        self.k = k
        self.params = [(p, decays) for p, decays in params]
        if not all(len(v) == k for v in (lr, momentum, weight_decay, nesterov)):
            raise ValueError(f"need one learning rate, momentum, weight decay and nesterov flag per member ({k})")
        device = self.params[0][0].device if self.params else torch.device("cpu")
        self.base_lr = torch.tensor(list(lr), dtype=torch.float32, device=device)  # (k,)
        self.momentum = torch.tensor(list(momentum), dtype=torch.float32, device=device)
        self.weight_decay = torch.tensor(list(weight_decay), dtype=torch.float32, device=device)
        self.nesterov = torch.tensor([bool(n) and m > 0 for n, m in zip(nesterov, momentum, strict=True)],
                                     device=device)  # (k,)
        self.factor = 1.0
        self.buffers: list[Tensor | None] = [None] * len(self.params)

    @property
    def lr(self) -> Tensor:
        """The members' learning rates now (k,)."""
        return self.base_lr * self.factor

    def set_factor(self, factor: float) -> None:
        """The schedule's factor of the base learning rates, for the next steps."""
        self.factor = float(factor)

    def zero_grad(self) -> None:
        """Drop every parameter's gradient."""
        for p, _ in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        """One SGD step, each member with its own settings."""
        lr, momentum = self.lr.view(self.k, 1), self.momentum.view(self.k, 1)
        for i, (p, decays) in enumerate(self.params):
            if p.grad is None:
                continue
            w, g = p.view(self.k, -1) if p.is_contiguous() else p.reshape(self.k, -1), p.grad.reshape(self.k, -1)
            d = g + self.weight_decay.view(self.k, 1) * w if decays else g.clone()  # (k, n)
            buf = self.buffers[i]
            buf = d.clone() if buf is None else buf.mul_(momentum).add_(d)
            self.buffers[i] = buf
            d = torch.where(self.nesterov.view(self.k, 1), d + momentum * buf, buf)
            update = (lr * d).view_as(p) if p.is_contiguous() else (lr * d).reshape(p.shape)
            p.sub_(update)

    def member_state(self, m: int) -> list[Tensor | None]:
        """Member ``m``'s momentum buffers, one per parameter (None before the first step), CPU copies."""
        return [None if b is None else b[m].detach().to("cpu", copy=True) for b in self.buffers]

    def load_members(self, states: Sequence[Sequence[Tensor | None]]) -> None:
        """The momentum buffers of :meth:`member_state`, one list per member, back into the bundle."""
        if len(states) != self.k:
            raise ValueError(f"{len(states)} members' optimiser states for a bundle of {self.k}")
        for i, (p, _) in enumerate(self.params):
            parts = [s[i] for s in states]
            if any(part is None for part in parts):
                self.buffers[i] = None
                continue
            self.buffers[i] = torch.stack([part.to(p.device) for part in parts])  # type: ignore[union-attr]
