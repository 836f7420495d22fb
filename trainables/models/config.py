"""The model configuration: every tunable architecture setting as a keyword with a default."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Literal, get_args

from trainables.registry import check_choice

__all__ = ["LWTA_LAYERS", "MAX_IBP_ALPHA", "MAX_SIZES", "LWTAInference", "LWTALayers", "ModelConfig"]

# Upper bounds of the architecture sizes, well above any robust model in the literature (WRN-106-16,
# U = 4): a config that asks for more (an edited export) is refused before anything is built.
MAX_SIZES = {"depth": 112, "widen": 32, "competitors": 16, "hidden_blocks": 16384, "cnn_width": 1024,
             "cnn_kernel": 15}

MAX_IBP_ALPHA = 100.0  # the searched range is 1-10, the paper's 3; exp(alpha) overflows past ~709

LWTALayers = Literal["all", "dense"]  # every activation, or the small CNN's dense hidden layer only (ReLU convolutions)
LWTAInference = Literal["sample", "argmax"]  # the LWTA winner at eval: stochastic, or the strongest unit
LWTA_LAYERS: tuple[LWTALayers, ...] = get_args(LWTALayers)


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of one model; ``name`` picks the registered builder.

    Registered names: ``cnn``, ``lwta-cnn``, ``pni-cnn`` (small CNN), ``wrn``, ``lwta-wrn``,
    ``pni-wrn`` (WideResNet). Fields a builder does not use are ignored by it.
    """

    name: str = "lwta-cnn"
    depth: int = 16  # WideResNet depth, 6n + 4
    widen: int = 1  # WideResNet widen factor (LWTA blocks per layer = channels / competitors)
    competitors: int = 2  # U: units competing in one LWTA block
    cnn_width: int = 32  # small CNN: channels of the first conv (the second has twice as many)
    cnn_kernel: int = 5  # small CNN: conv kernel size (odd)
    cnn_pool_first: bool = False  # small CNN: conv-pool-act (ReLU: the same function; LWTA: 4x fewer competitions)
    hidden_blocks: int = 64  # LWTA blocks in the small CNN's dense layer (hidden = blocks * U)
    lwta_layers: LWTALayers = "all"  # "all" the activations compete, or "dense": the small CNN's dense layer only
    temperature: float = 0.67  # Gumbel-softmax temperature of the LWTA winner while training
    inference: LWTAInference = "sample"  # LWTA winner at eval: "sample" (stochastic) or "argmax"
    ibp: bool = True  # IBP utility indicators over LWTA units
    ibp_alpha: float = 3.0  # Beta(alpha, 1) prior of the stick-breaking weights
    ibp_temperature: float = 0.67  # binary-Concrete temperature of the utility indicators
    pni_init: float = 0.25  # initial PNI noise scale alpha
    input_noise: float = 0.0  # randomized smoothing sigma: > 0 wraps the model in Gaussian input noise

    def __post_init__(self) -> None:
        self._check_types()
        if not 2 <= self.competitors <= MAX_SIZES["competitors"]:
            raise ValueError(f"competitors must be in [2, {MAX_SIZES['competitors']}], got {self.competitors=}")
        if not 10 <= self.depth <= MAX_SIZES["depth"] or (self.depth - 4) % 6:
            raise ValueError(f"WideResNet depth must be 6n + 4 (10, 16, 22, 28, 34, ..., {MAX_SIZES['depth']}), "
                             f"got {self.depth=}")
        for name in ("widen", "hidden_blocks", "cnn_width", "cnn_kernel"):
            if not 1 <= getattr(self, name) <= MAX_SIZES[name]:
                raise ValueError(f"{name} must be in [1, {MAX_SIZES[name]}], got {getattr(self, name)}")
        if self.cnn_kernel % 2 == 0:
            raise ValueError(f"cnn_kernel must be odd, got {self.cnn_kernel=}")
        if not (0 < self.temperature < math.inf and 0 < self.ibp_temperature < math.inf):
            raise ValueError(f"temperatures must be finite and > 0, got {self.temperature=}, {self.ibp_temperature=}")
        if not 0 < self.ibp_alpha <= MAX_IBP_ALPHA:
            raise ValueError(f"ibp_alpha must be in (0, {MAX_IBP_ALPHA:g}], got {self.ibp_alpha=}")
        check_choice("lwta_layers", self.lwta_layers, LWTA_LAYERS)
        check_choice("inference", self.inference, get_args(LWTAInference))
        if not 0 <= self.pni_init < math.inf:
            raise ValueError(f"pni_init must be finite and >= 0, got {self.pni_init=}")
        if not 0 <= self.input_noise < math.inf:
            raise ValueError(f"input_noise must be finite and >= 0, got {self.input_noise=}")

    def settings(self) -> dict[str, Any]:
        """The fields the model ``name`` is built from, as its card lists them (a builder ignores the others).

        A name outside the built-in families and architectures keeps every field.
        """
        family, _, architecture = self.name.rpartition("-")
        if architecture not in _ARCHITECTURE_FIELDS or family not in _FAMILY_FIELDS:
            return {f.name: getattr(self, f.name) for f in fields(self)}
        keys = ["name", *_ARCHITECTURE_FIELDS[architecture], *_FAMILY_FIELDS[family]]
        if family == "lwta" and self.ibp:
            keys += ["ibp_alpha", "ibp_temperature"]
        if family == "lwta" and architecture == "cnn":
            keys.append("lwta_layers")
        if architecture == "cnn" and family != "lwta":
            keys.append("competitors")  # the dense layer's width is hidden_blocks x competitors
        if self.input_noise > 0:
            keys.append("input_noise")
        return {key: getattr(self, key) for key in keys}

    def _check_types(self) -> None:
        """ValueError (one line) for a field of the wrong type: whole numbers, numbers, switches and names."""
        for f in fields(self):
            value, kind = getattr(self, f.name), _KINDS.get(f.name)
            if kind == "int" and not (isinstance(value, int) and not isinstance(value, bool)):
                raise ValueError(f"{f.name} must be a whole number, got {value!r}")
            if kind == "float" and not (isinstance(value, (int, float)) and not isinstance(value, bool)):
                raise ValueError(f"{f.name} must be a number, got {value!r}")
            if kind == "bool" and not isinstance(value, bool):
                raise ValueError(f"{f.name} must be true or false, got {value!r}")
            if kind == "str" and not isinstance(value, str):
                raise ValueError(f"{f.name} must be a string, got {value!r}")


_ARCHITECTURE_FIELDS = {"cnn": ("cnn_width", "cnn_kernel", "cnn_pool_first", "hidden_blocks"),
                        "wrn": ("depth", "widen")}
_FAMILY_FIELDS = {"": (), "lwta": ("competitors", "temperature", "inference", "ibp"), "pni": ("pni_init",)}
_KINDS = {"name": "str", "depth": "int", "widen": "int", "competitors": "int", "cnn_width": "int", "cnn_kernel": "int",
          "cnn_pool_first": "bool", "hidden_blocks": "int", "lwta_layers": "str", "temperature": "float",
          "inference": "str", "ibp": "bool", "ibp_alpha": "float", "ibp_temperature": "float", "pni_init": "float",
          "input_noise": "float"}
