"""Each member attacks its own inputs: a bundle's training attacks, at every member's own radius.

Members draw their training attacks on their own (each its own mix, at its own ``eps_scale``). The
members that drew the same attack (the same spec but for its radius) attack together: the bundle,
seen through :class:`MemberBatch` as one model over those members' examples, is attacked once with
per-example radii (:meth:`~trainables.attacks.Attack.per_example`). Members are independent in the
bundle's forward pass, so every (member, example) pair is an example of its own to the attack:
its loss, its gradient and its projection are that member's alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from trainables.attacks import Attack

from .model import BundledModel

__all__ = ["MemberBatch", "attack_members"]


class MemberBatch(nn.Module):
    """The bundle as one model over some members' examples: (s * B, C, H, W) -> logits (s * B, classes).

    The other members keep their ``fixed`` inputs; their outputs are computed and dropped.
    """

    def __init__(self, bundle: BundledModel, members: Tensor, fixed: Tensor) -> None:
        super().__init__()
        self.bundle, self.members, self.fixed = bundle, members, fixed  # members (s,), fixed (k, B, C, H, W)

    def forward(self, x: Tensor) -> Tensor:
        s, batch = self.members.numel(), self.fixed.shape[1]
        full = self.fixed.index_copy(0, self.members, x.view(s, batch, *x.shape[1:]))  # (k, B, C, H, W)
        logits = self.bundle(full)  # (k, B, classes)
        return logits.index_select(0, self.members).reshape(s * batch, -1)  # (s * B, classes)


def _spec_key(attack: Attack) -> tuple[str, str]:
    """What makes two members' attacks one: the attack and its budget, not its radius."""
    return attack.name, repr(attack.budget())  # TRADES's PGD (pgd-kl) and PGD have other names


def attack_members(bundle: BundledModel, x: Tensor, y: Tensor, attacks: Sequence[Attack | None]) -> Tensor:
    """Each member's training inputs (k, B, C, H, W): ``x`` attacked by its own ``attacks[m]`` (None: clean).

    ``attacks[m]`` is bound at member m's radius; members with the same spec attack together.
    """
    k = bundle.k
    if len(attacks) != k:
        raise ValueError(f"need one attack (or None) per member, got {len(attacks)} for {k}")
    clean = x.detach().unsqueeze(0).expand(k, *x.shape)  # (k, B, C, H, W)
    out = clean.clone()
    groups: dict[tuple[str, str], list[int]] = {}
    for m, attack in enumerate(attacks):
        if attack is not None:
            groups.setdefault(_spec_key(attack), []).append(m)
    batch = x.shape[0]
    for members in groups.values():
        index = torch.tensor(members, device=x.device)
        first = attacks[members[0]]
        assert first is not None
        radii = [attacks[m].eps for m in members]  # type: ignore[union-attr]
        if len(set(radii)) == 1:
            attack = first
        else:
            per_example = torch.tensor(radii, dtype=x.dtype, device=x.device).repeat_interleave(batch)  # (s * B,)
            attack = first.per_example(per_example)
        view = MemberBatch(bundle, index, clean)
        adversarial = attack.perturb(view, x.detach().repeat(len(members), *([1] * (x.dim() - 1))),
                                     y.repeat(len(members)))  # (s * B, C, H, W)
        out[index] = adversarial.view(len(members), batch, *x.shape[1:])
    return out
