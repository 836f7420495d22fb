"""Training recipes: named settings of the one training loop (model family, attack mix, loss, input noise).

A recipe never trains; it rewrites a :class:`RunSpec` and hands it to :func:`trainables.train.fit`.
The first seven rows are the paper's table (regular training, PNI, randomized smoothing and its
combinations with attacks and PNI); ``pgd-at`` (Madry et al.) and ``lwta`` complete it. A recipe keeps
the base's data, suite, optimiser and size settings, and the base model's architecture: a recipe picks
the model family (relu, pni, lwta), the base picks cnn or wrn.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from trainables.models import FAMILIES, architecture_of
from trainables.registry import Registry
from trainables.train.config import RunSpec
from trainables.train.mix import AttackMix, parse_weights

__all__ = ["DEFAULT_SIGMA", "RECIPES", "Recipe", "apply_recipe", "get_recipe", "list_recipes", "register_recipe"]

DEFAULT_SIGMA = 0.25  # smoothing noise when the base model has none (Cohen et al.'s middle setting)


@dataclass(frozen=True)
class Recipe:
    """One named training method: model family, per-batch attack mix, clean-loss weight, input noise."""

    name: str
    description: str
    family: str = "relu"  # a registered model family (relu, lwta, pni)
    mix: str = "none:1"  # weights "name:w,..." over the base run's mix (its attacks keep their budgets)
    clean_weight: float = 0.0  # loss = w * CE(x) + (1 - w) * CE(x_attacked)
    smoothing: bool = False  # Gaussian input noise: the base's input_noise, else DEFAULT_SIGMA

    def __post_init__(self) -> None:
        FAMILIES.get(self.family)  # raises ValueError on an unknown family
        AttackMix.parse(self.mix)  # raises ValueError on a bad mix

    def model_name(self, base_name: str) -> str:
        """The registered model for this family in the base model's architecture (cnn or wrn)."""
        return FAMILIES[self.family].model_name(architecture_of(base_name))

    def apply(self, base: RunSpec) -> RunSpec:
        """``base`` with this recipe's model, mix, clean weight and input noise."""
        sigma = (base.model.input_noise or DEFAULT_SIGMA) if self.smoothing else 0.0
        model = replace(base.model, name=self.model_name(base.model.name), input_noise=sigma)
        mix = base.train.mix.reweighted(parse_weights(self.mix))
        train = replace(base.train, mix=mix, clean_weight=self.clean_weight)
        return replace(base, model=model, train=train)


RECIPES: Registry[Recipe] = Registry("recipe")


def register_recipe(recipe: Recipe) -> Recipe:
    """Register ``recipe`` under its name (names are unique)."""
    return RECIPES.add(recipe.name, recipe)


def list_recipes() -> list[str]:
    """Names of the registered recipes, in registration order (the paper's table first)."""
    return RECIPES.in_order()


def get_recipe(name: str) -> Recipe:
    """The recipe registered as ``name``."""
    return RECIPES.get(name)


def apply_recipe(name: str, base: RunSpec) -> RunSpec:
    """``base`` rewritten by the recipe ``name``."""
    return get_recipe(name).apply(base)


_ALL = "none:1,pgd:1,fgsm:1,cw:1"
for _recipe in (
    Recipe("regular", "plain training on clean images"),
    Recipe("noise-injection", "PNI (He et al. 2019): learnable activation noise, 0.5 clean + 0.5 PGD loss",
           family="pni", mix="pgd:1", clean_weight=0.5),
    Recipe("smoothing", "randomized smoothing (Cohen et al. 2019): training under Gaussian input noise",
           smoothing=True),
    Recipe("smoothing+pgd", "Gaussian input noise, half the batches PGD", mix="none:1,pgd:1", smoothing=True),
    Recipe("smoothing+pgd+fgsm", "Gaussian input noise, batches clean / PGD / FGSM",
           mix="none:1,pgd:1,fgsm:1", smoothing=True),
    Recipe("smoothing+pgd+fgsm+cw", "Gaussian input noise, batches clean / PGD / FGSM / CW",
           mix=_ALL, smoothing=True),
    Recipe("smoothing+pgd+fgsm+cw+noise-injection",
           "PNI model under Gaussian input noise, batches clean / PGD / FGSM / CW (clean batches stand in "
           "for PNI's clean loss term)", family="pni", mix=_ALL, smoothing=True),
    Recipe("pgd-at", "PGD adversarial training (Madry et al. 2018)", mix="pgd:1"),
    Recipe("lwta", "Stochastic LWTA + IBP with the paper's uniform 0..7 attack draw",
           family="lwta", mix="none:4,gaussian:1,fgsm:1,pgd:1,cw:1"),
):
    register_recipe(_recipe)
del _recipe
