"""Training recipes: each is a valid configuration of the one loop and trains on real Fashion-MNIST."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from trainables.attacks import FGSM, PGD, CarliniWagnerL2
from trainables.data import DataConfig
from trainables.data.sources import DATASETS
from trainables.evaluation import SuiteConfig
from trainables.models import ModelConfig, build_model, pni_parameters
from trainables.smoothing import SmoothedModel
from trainables.train import AttackMix, RunSpec, TrainConfig, fit
from trainables.train.recipes import DEFAULT_SIGMA, apply_recipe, get_recipe, list_recipes

FMNIST = DATASETS["fashion-mnist"][0]
BASE = RunSpec(
    data=DataConfig(train_limit=256, val_limit=50, test_limit=50),
    model=ModelConfig(name="cnn", hidden_blocks=8, depth=10),
    train=TrainConfig(epochs=1, batch_size=128, lr=0.05, eval_limit=50, mix=AttackMix().with_budget(
        [("pgd", "steps", 2), ("cw", "steps", 2)])),
    suite=SuiteConfig(attacks=(FGSM(), PGD(steps=2)), eot_samples=2, predict_samples=1),
)
PAPER_TABLE = ["regular", "noise-injection", "smoothing", "smoothing+pgd", "smoothing+pgd+fgsm",
              "smoothing+pgd+fgsm+cw", "smoothing+pgd+fgsm+cw+noise-injection"]


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def test_registry_holds_the_paper_table_then_pgd_at_and_lwta() -> None:
    assert list_recipes() == [*PAPER_TABLE, "pgd-at", "lwta"]
    with pytest.raises(ValueError, match="no-such-recipe"):
        apply_recipe("no-such-recipe", BASE)


@pytest.mark.parametrize("name", list_recipes())
@pytest.mark.parametrize("arch", ["cnn", "wrn"])
def test_recipe_gives_a_valid_spec_that_builds(name: str, arch: str) -> None:
    base = replace(BASE, model=replace(BASE.model, name=arch))
    spec = apply_recipe(name, base)
    assert RunSpec.from_dict(spec.to_dict()) == spec  # every part passes its own validation
    assert spec.data == base.data and spec.suite == base.suite and spec.train.lr == base.train.lr
    assert spec.model.name.endswith(arch)
    smoothing = name.startswith("smoothing")
    assert spec.model.input_noise == (DEFAULT_SIGMA if smoothing else 0.0)
    assert spec.model.name.startswith("pni-") == name.endswith("noise-injection")
    model = build_model(spec.model, FMNIST)
    assert isinstance(model, SmoothedModel) == smoothing
    with torch.no_grad():
        assert model.eval()(torch.rand(2, 1, 28, 28)).shape == (2, 10)


def _drawn(mix: AttackMix) -> dict[str, float]:
    return {name: w for name, w in zip(mix.names(), mix.weights(), strict=True) if w > 0}


def test_recipe_settings_match_the_methods() -> None:
    assert _drawn(apply_recipe("regular", BASE).train.mix) == {"none": 1.0}
    pni = apply_recipe("noise-injection", BASE).train
    assert _drawn(pni.mix) == {"pgd": 1.0} and pni.clean_weight == 0.5
    assert _drawn(apply_recipe("pgd-at", BASE).train.mix) == {"pgd": 1.0}
    lwta_mix = apply_recipe("lwta", BASE).train.mix
    assert lwta_mix.weights() == AttackMix().weights() == (4.0, 1.0, 1.0, 1.0, 1.0)  # the paper's 0..7 draw
    assert apply_recipe("lwta", BASE).model.name == "lwta-cnn"
    assert _drawn(apply_recipe("smoothing+pgd+fgsm", BASE).train.mix) == {"none": 1.0, "pgd": 1.0, "fgsm": 1.0}
    # the recipes re-weight the base's mix: its attacks keep their budgets
    assert dict(zip(lwta_mix.names(), (e.attack for e in lwta_mix.entries), strict=True))["pgd"] == PGD(steps=2)
    cw = apply_recipe("smoothing+pgd+fgsm+cw", BASE).train.mix.entries[-1].attack
    assert cw == CarliniWagnerL2(steps=2, bounded=False)
    # a base that already sets sigma keeps it; recipes without smoothing switch it off
    noisy = replace(BASE, model=replace(BASE.model, input_noise=0.5))
    assert apply_recipe("smoothing", noisy).model.input_noise == 0.5
    assert apply_recipe("pgd-at", noisy).model.input_noise == 0.0
    assert get_recipe("smoothing").description


def test_pni_scale_gets_gradients_and_noise_stays_on_at_eval() -> None:
    model = build_model(apply_recipe("noise-injection", BASE).model, FMNIST).train()
    x, y = torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,))
    F.cross_entropy(model(x), y).backward()
    alphas = pni_parameters(model)
    assert alphas and all(a.grad is not None and a.grad.abs() > 0 for a in alphas)
    model.eval()
    with torch.no_grad():
        assert not torch.allclose(model(x), model(x))


@pytest.mark.slow
@pytest.mark.parametrize("name", list_recipes())
def test_recipe_trains_one_epoch_on_real_fashion_mnist(name: str, fmnist, device) -> None:
    splits = replace(fmnist, train=fmnist.train.head(256))
    result = fit(apply_recipe(name, BASE), splits, device=device)
    final = result.final
    assert 0.0 <= final["robust_acc"] <= final["natural_acc"] <= 1.0
    assert torch.isfinite(torch.tensor(final["train_loss"]))
    assert isinstance(result.model, SmoothedModel) == name.startswith("smoothing")
