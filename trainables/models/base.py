"""Base class and helpers shared by every model family.

Every registered model takes images in pixel space ([0, 1], shape (B, C, H, W)) and normalises
them itself, so attacks and epsilons live in pixel units. Stochastic layers (LWTA, IBP, PNI)
subclass :class:`StochasticModule`; the helpers here find them without knowing their type.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor, nn

__all__ = [
    "Normalize",
    "RobustModel",
    "StochasticModule",
    "evaluating",
    "is_stochastic",
    "model_device",
    "predict_proba",
    "predict",
    "scoring_layout",
    "surrogate_gradients",
]


class StochasticModule(nn.Module):
    """A layer whose forward pass draws noise, also at inference.

    ``surrogate`` switches the layer to its straight-through surrogate for adaptive attacks: the
    forward pass keeps its hard stochastic sample, the backward pass uses a smooth expectation
    (for LWTA the expected mask softmax(h)), so gradients neither vanish nor explode.
    """

    def __init__(self) -> None:
        super().__init__()
        self.surrogate = False

    def kl_divergence(self) -> Tensor | None:
        """KL(q || prior) of this layer's variational parameters, or None when it has none."""
        return None

    @classmethod
    def stacked_kl(cls, layers: Sequence[StochasticModule]) -> Tensor | None:
        """The summed :meth:`kl_divergence` of ``layers`` (all of this class), None when none has one.

        A subclass may compute it in one evaluation over all its layers (LWTA does for its IBP sticks).
        """
        terms = [t.reshape(()) for m in layers if (t := m.kl_divergence()) is not None]
        return torch.stack(terms).sum() if terms else None


class Normalize(nn.Module):
    """Per-channel (x - mean) / std inside the model, so inputs stay in [0, 1] pixel space."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


class RobustModel(nn.Module):
    """A classifier on [0, 1] images with the variational KL of its stochastic layers."""

    def kl(self) -> Tensor:
        """Total KL over every stochastic layer (a 0-d tensor; zero for deterministic models).

        Layers of one class are summed by that class's :meth:`StochasticModule.stacked_kl`, in one
        evaluation where it has one; :meth:`layer_kl` is the layer-by-layer reference.
        """
        kinds: dict[type[StochasticModule], list[StochasticModule]] = {}
        for m in self.modules():
            if isinstance(m, StochasticModule):
                kinds.setdefault(type(m), []).append(m)
        terms = [t.reshape(()) for kind, layers in kinds.items() if (t := kind.stacked_kl(layers)) is not None]
        return self._total(terms)

    def layer_kl(self) -> Tensor:
        """:meth:`kl` as the sum of every stochastic layer's own :meth:`StochasticModule.kl_divergence`."""
        return self._total([t.reshape(()) for m in self.modules() if isinstance(m, StochasticModule)
                            if (t := m.kl_divergence()) is not None])

    def _total(self, terms: list[Tensor]) -> Tensor:
        if not terms:
            return torch.zeros((), device=model_device(self))
        return terms[0] if len(terms) == 1 else torch.stack(terms).sum()

    @property
    def stochastic(self) -> bool:
        """True when the forward pass is random at inference (needs EOT to be attacked)."""
        return is_stochastic(self)


def model_device(module: nn.Module) -> torch.device:
    """The device of the module's first parameter (CPU for a module without parameters)."""
    return next((p.device for p in module.parameters()), torch.device("cpu"))


def is_stochastic(model: nn.Module) -> bool:
    """Whether any submodule draws noise in its forward pass."""
    return any(isinstance(m, StochasticModule) for m in model.modules())


@contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """Within the block the model is in eval mode; its training flag is restored afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def _channels_last(model: nn.Module) -> bool:
    """Whether the model's 4-D weights are channels-last (those of one input channel are both layouts at once)."""
    telling = [p for p in model.parameters()
               if p.dim() == 4 and p.is_contiguous() != p.is_contiguous(memory_format=torch.channels_last)]
    return all(p.is_contiguous(memory_format=torch.channels_last) for p in telling)


@contextmanager
def scoring_layout(model: nn.Module, device: torch.device) -> Iterator[nn.Module]:
    """Within the block a model scored on CPU is channels-last, its layout restored afterwards.

    oneDNN's convolutions and pooling run faster on NHWC (scoring the quick preset's LWTA CNN: 0.7x
    the time, the same accuracies); the weights keep their values, only their layout changes.
    """
    if device.type != "cpu" or _channels_last(model) or not any(p.dim() == 4 for p in model.parameters()):
        yield model
        return
    model.to(memory_format=torch.channels_last)
    try:
        yield model
    finally:
        model.to(memory_format=torch.contiguous_format)


@contextmanager
def surrogate_gradients(model: nn.Module, enabled: bool = True) -> Iterator[None]:
    """Within the block, stochastic layers back-propagate through their smooth surrogate."""
    layers = [m for m in model.modules() if isinstance(m, StochasticModule)]
    before = [m.surrogate for m in layers]
    try:
        for m in layers:
            m.surrogate = enabled
        yield
    finally:
        for m, b in zip(layers, before, strict=True):
            m.surrogate = b


@torch.no_grad()
def predict_proba(model: nn.Module, x: Tensor, samples: int = 1) -> Tensor:
    """Class probabilities (B, classes), averaged over ``samples`` draws of a stochastic model."""
    draws = samples if is_stochastic(model) else 1
    total = torch.softmax(model(x), dim=1)
    for _ in range(draws - 1):
        total += torch.softmax(model(x), dim=1)
    return total / draws


def predict(model: nn.Module, x: Tensor, samples: int = 1) -> Tensor:
    """Predicted labels (B,), aggregating ``samples`` draws for stochastic models."""
    return predict_proba(model, x, samples).argmax(dim=1)
