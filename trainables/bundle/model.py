"""A bundle: k models of one architecture as one module, each member's output its own.

:func:`bundle_models` takes k built models (each initialised as its own run would be), copies the
first as a skeleton and replaces every leaf layer by the bundled layer of the k members'
(:mod:`.layers`): the architecture's own ``forward`` then runs on the bundled layout unchanged.
:class:`BundledModel` takes inputs (k, B, C, H, W) (each member its own, as its attacks make them)
or (B, C, H, W) (the same for all) and returns logits (k, B, classes). :meth:`BundledModel.member_state_dict`
gives a member's weights as an ordinary single model's, which is what checkpoints and exports hold.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from trainables.models import RobustModel

from .layers import (
    SHARED_BUFFERS,
    BundledLWTA,
    BundledNoiseInjection,
    bundle_layer,
    is_layer,
    member_tensor,
    stack_tensors,
)

__all__ = ["BundledModel", "bundle_models"]


class BundledModel(RobustModel):
    """k members' models as one: forward (k, B, ...) or (B, ...) -> logits (k, B, classes)."""

    def __init__(self, body: RobustModel, k: int, shapes: dict[str, torch.Size]) -> None:
        super().__init__()
        self.body, self.k = body, k
        self._shapes = shapes  # state-dict key of a single model -> its tensor's shape

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 4:  # one input for every member
            x = x.unsqueeze(0).expand(self.k, *x.shape)
        k, batch, channels = x.shape[:3]
        if k != self.k:
            raise ValueError(f"a bundle of {self.k} members got inputs for {k}")
        fused = x.transpose(0, 1).reshape(batch, k * channels, *x.shape[3:])  # (B, k * C, H, W), member-major
        return self.body(fused).view(batch, k, -1).transpose(0, 1)  # (k, B, classes)

    def kl_members(self) -> Tensor:
        """Each member's variational KL (k,): zero for members without stochastic layers that have one."""
        total = torch.zeros(self.k, device=next(self.parameters()).device)
        for module in self.modules():
            if isinstance(module, BundledLWTA) and (terms := module.kl_members()) is not None:
                total = total + terms
        return total

    def member_state_dict(self, m: int) -> dict[str, Tensor]:
        """Member ``m``'s weights, keyed and shaped as its single model's state dict (CPU copies)."""
        if not 0 <= m < self.k:
            raise ValueError(f"no member {m} in a bundle of {self.k}")
        bundled = self.body.state_dict()
        return {name: (value if name.rsplit(".", 1)[-1] in SHARED_BUFFERS
                       else member_tensor(value, self.k, m, shape)).detach().to("cpu", copy=True)
                for name, shape in self._shapes.items() for value in (bundled[name],)}

    def load_members(self, states: Sequence[dict[str, Tensor]]) -> None:
        """Load the k members' single-model state dicts (the inverse of :meth:`member_state_dict`)."""
        if len(states) != self.k:
            raise ValueError(f"a bundle of {self.k} members got {len(states)} state dicts")
        self.body.load_state_dict(_stacked(states))

    def noise_members(self) -> list[nn.Module]:
        """The bundled PNI layers (their alphas take no weight decay, as a single model's)."""
        return [m for m in self.modules() if isinstance(m, BundledNoiseInjection)]


def _stacked(states: Sequence[dict[str, Tensor]]) -> dict[str, Tensor]:
    return {name: (states[0][name] if name.rsplit(".", 1)[-1] in SHARED_BUFFERS
                   else stack_tensors([s[name] for s in states])) for name in states[0]}


def _replace_layers(body: nn.Module, members: Sequence[nn.Module]) -> None:
    """Replace every layer of ``body`` (a copy of members[0]) by the bundled layer of the members' layers.

    A layer is a module :func:`bundle_layer` knows (an LWTA layer with its IBP indicators is one), or a
    leaf; containers (Sequential, blocks, the model) are kept and run their own forward.
    """
    named = [dict(m.named_modules()) for m in members]
    replaced: list[str] = []
    for name, module in list(body.named_modules()):
        if not name or any(name.startswith(f"{done}.") for done in replaced):
            continue
        if not is_layer(module) and any(True for _ in module.children()):
            continue
        bundled = bundle_layer([n[name] for n in named])
        replaced.append(name)
        if bundled is not None:
            parent_name, _, child = name.rpartition(".")
            setattr(body.get_submodule(parent_name) if parent_name else body, child, bundled)


def bundle_models(models: Sequence[RobustModel]) -> BundledModel:
    """The k models as one bundle, each member's weights and buffers as its own model holds them.

    ValueError (one line) when the models differ in architecture or size, or hold a layer that
    cannot be bundled.
    """
    if not models:
        raise ValueError("a bundle needs at least one member")
    structure = [[(name, type(m).__name__) for name, m in model.named_modules()] for model in models]
    if any(s != structure[0] for s in structure):
        raise ValueError("the members differ in architecture: only models of one shape can be bundled")
    body = copy.deepcopy(models[0])
    _replace_layers(body, models)
    shapes = {name: value.shape for name, value in models[0].state_dict().items()}
    bundle = BundledModel(body, len(models), shapes)
    # the bundled convolutions, norms and per-member buffers are made new, on the CPU: onto the members' device
    device = next(itertools.chain(models[0].parameters(), models[0].buffers())).device
    return bundle.to(device).train(models[0].training)
