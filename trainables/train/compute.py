"""How a training run computes on its device: autocast precision and the model's memory layout.

``TrainConfig.precision`` and ``TrainConfig.memory_format`` name a choice or ``"auto"``; this module
resolves them for the device a run trains on. ``auto`` turns a choice on only where it was measured
faster and as accurate (docs/bench.md, "Precision and layout"):

* channels-last on CPU: oneDNN's convolutions and pooling run 1.3-2x faster on NHWC than on NCHW
  (PGD-3 adversarial-training step of the quick preset's CNNs, 2-core VM). Off on CUDA until the GPU
  check measures it (the issue's H200 leads saw eager bf16 + channels-last LWTA *slower*).
* bf16 autocast on CPUs with native bf16 (AVX512-BF16 or AMX): the convolutions, their backward
  and the attack's forward and backward passes in bf16: with channels-last, a PGD-3 step of the
  quick preset's LWTA CNN in 0.55x the fp32 contiguous time (ReLU CNN 0.25-0.39x in rough runs), at
  the same clean and robust accuracy. Off on CUDA until measured, and on CPUs without native bf16
  (emulated, slower).

Only training runs under autocast: the training attacks and the training forward. The
perturbation, its step and projection stay float32 (autocast casts the input of each convolution,
not the tensor the attack updates), and so do the loss, the KL and the optimiser. Every evaluation
(per-epoch suite, objective, export) runs in float32, so a reported accuracy never depends on it.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Literal, get_args

import torch
from torch import nn

from trainables.registry import check_choice

__all__ = ["MEMORY_FORMATS", "PRECISIONS", "Compute", "MemoryFormat", "Precision", "cpu_has_native_bf16",
           "resolve_compute"]

Precision = Literal["auto", "fp32", "bf16"]
MemoryFormat = Literal["auto", "contiguous", "channels_last"]
PRECISIONS: tuple[Precision, ...] = get_args(Precision)
MEMORY_FORMATS: tuple[MemoryFormat, ...] = get_args(MemoryFormat)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively: AVX512-BF16 or AMX (elsewhere oneDNN emulates it, slower)."""
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:  # a torch without these probes: assume not
        return False


@dataclass(frozen=True)
class Compute:
    """The resolved choices: autocast dtype (None: float32) and whether the model is channels-last."""

    autocast: torch.dtype | None = None
    channels_last: bool = False

    def autocast_context(self, device: torch.device) -> contextlib.AbstractContextManager[object]:
        """Autocast to :attr:`autocast` on ``device``'s type, or a no-op for float32."""
        if self.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=self.autocast)

    def layout(self, model: nn.Module) -> nn.Module:
        """``model`` in this run's memory layout (in place, as ``Module.to`` does)."""
        return model.to(memory_format=torch.channels_last) if self.channels_last else model

    def describe(self) -> str:
        """Both choices in words, e.g. ``bf16 channels-last``."""
        dtype = "fp32" if self.autocast is None else {torch.bfloat16: "bf16"}.get(self.autocast, str(self.autocast))
        return f"{dtype} {'channels-last' if self.channels_last else 'contiguous'}"


def resolve_compute(precision: Precision, memory_format: MemoryFormat, device: torch.device,
                    native_bf16: bool | None = None) -> Compute:
    """The :class:`Compute` that ``precision`` and ``memory_format`` (each a name or ``auto``) give on ``device``.

    ``native_bf16`` stands for :func:`cpu_has_native_bf16` (None: ask the CPU).
    """
    check_choice("precision", precision, PRECISIONS)
    check_choice("memory_format", memory_format, MEMORY_FORMATS)
    cpu = device.type == "cpu"
    if precision == "auto":
        native = cpu_has_native_bf16() if native_bf16 is None else native_bf16
        precision = "bf16" if cpu and native else "fp32"
    if memory_format == "auto":
        memory_format = "channels_last" if cpu else "contiguous"
    return Compute(autocast=torch.bfloat16 if precision == "bf16" else None,
                   channels_last=memory_format == "channels_last")
