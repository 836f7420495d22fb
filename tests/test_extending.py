"""Extending robustune: a new attack is one file, a new architecture one function; errors and warnings."""

from __future__ import annotations

import sys
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import nn

import trainables.attacks
import trainables.evaluation
from trainables.attacks import ThreatModel, list_attacks, parse_assignments
from trainables.attacks import registry as attack_registry
from trainables.cli import run_main
from trainables.data import DataConfig, Splits
from trainables.discovery import import_modules
from trainables.evaluation import SuiteConfig, evaluate_robustness
from trainables.models import FAMILIES, ModelConfig, build_model, list_models, register_architecture
from trainables.models import registry as model_registry
from trainables.train import RunSpec, TrainConfig, fit
from tuner import evaluate
from tuner.export import evaluate_for_export, export_model, load_export
from tuner.report import Candidate, ReportConfig, check_rows, evaluate_candidate, table_markdown
from tuner.report.scoring import FigureData

# The whole of a new attack: one file in trainables/attacks/, nothing else edited.
THROWAWAY = textwrap.dedent('''
    """A throw-away attack for the tests: random sign patterns of size eps, the first that fools the model."""

    from __future__ import annotations

    from dataclasses import dataclass
    from typing import ClassVar

    import torch
    from torch import Tensor, nn

    from .base import Attack, check_inputs, misclassified
    from .registry import register_attack


    @register_attack("random-sign")
    @dataclass(frozen=True, kw_only=True)
    class RandomSign(Attack):
        """x + eps * (a random +-1 pattern); of ``tries`` draws, the first that fools the model."""

        norm: ClassVar[str] = "linf"

        tries: int = 2

        def __post_init__(self) -> None:
            super().__post_init__()
            if self.tries < 1:
                raise ValueError(f"tries must be >= 1, got {self.tries=}")

        def perturb(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
            check_inputs(x, y)
            best, todo = x.detach().clone(), torch.ones(len(x), dtype=torch.bool, device=x.device)
            for _ in range(self.tries):
                sign = torch.randint(0, 2, x.shape, device=x.device, dtype=x.dtype) * 2 - 1
                candidate = (x.detach() + self.radius * sign).clamp(0, 1)
                take = todo & misclassified(model, candidate, y, self.eot_samples)
                best[take] = candidate[take]
                todo &= ~take
            return best
''')


@pytest.fixture
def random_sign(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[type]:
    """The throw-away attack, dropped as a file into the attacks package and picked up by its discovery."""
    folder = tmp_path / "more_attacks"
    folder.mkdir()
    (folder / "random_sign.py").write_text(THROWAWAY)
    monkeypatch.setattr(trainables.attacks, "__path__", [*trainables.attacks.__path__, str(folder)])
    try:
        assert "random_sign" in import_modules("trainables.attacks", [str(folder)])
        yield attack_registry.attack_class("random-sign")
    finally:
        attack_registry.ATTACKS.remove("random-sign")
        sys.modules.pop("trainables.attacks.random_sign", None)


def _tiny(fmnist: Splits) -> Splits:
    return Splits(fmnist.train.head(256), fmnist.val.head(60), fmnist.test.head(60), fmnist.info)


def test_a_new_attack_file_reaches_cli_suites_mixes_reports_and_exports(random_sign, fmnist, tmp_path, capsys):
    assert "random-sign" in list_attacks()
    assert "random-sign" in "".join(evaluate.build_parser().format_help().split())  # --attacks choices (wrapped)
    suite = SuiteConfig(eot_samples=2, predict_samples=2).select(
        ["fgsm", "random-sign"]).with_budget(parse_assignments("random-sign.tries=3"))
    assert suite.attacks[1] == random_sign(tries=3)
    assert SuiteConfig.from_dict(suite.to_dict()) == suite

    mix = TrainConfig().mix.reweighted({"none": 1.0, "random-sign": 1.0})  # a training mix
    spec = RunSpec(data=DataConfig(), model=ModelConfig(name="lwta-cnn", cnn_width=8, cnn_kernel=3, hidden_blocks=8),
                   train=TrainConfig(epochs=1, batch_size=64, mix=mix, eval_limit=60), suite=suite)
    assert RunSpec.from_dict(spec.to_dict()) == spec
    splits = _tiny(fmnist)
    result = fit(spec, splits)  # trains on it, and scores every epoch with it
    assert 0.0 <= result.final["acc/random-sign"] <= result.final["natural_acc"]

    robust = evaluate_robustness(result.model, splits.test.floats(), splits.test.labels, suite, spec.threat)
    assert set(robust.per_attack) == {"fgsm", "random-sign"}

    candidate = Candidate(name="tiny", model=result.model, spec=spec, info=splits.info, test=splits.test,
                          source="test")
    report_cfg = ReportConfig(suite=suite, figure_limit=10, examples=2)
    gathered = FigureData()
    row = evaluate_candidate(candidate, report_cfg, torch.device("cpu"), gathered)  # a report row
    check_rows([row])
    assert list(row.attacks) == ["fgsm", "random-sign"] and "random-sign" in gathered.examples
    assert "random-sign" in table_markdown([row], report_cfg, command="c", created="now", provenance={})

    metrics = evaluate_for_export(result.model, splits, suite, spec.threat)  # an export
    out = export_model(result.model, spec, tmp_path / "export", info=splits.info, metrics=metrics, command="c",
                       space="test")
    card = (out / "README.md").read_text()
    assert "| random-sign |" in card and "`random-sign`: L-inf eps 0.1; tries 3" in card
    assert load_export(out).metrics["test"]["acc/random-sign"] <= metrics["test"]["natural_acc"]
    code = run_main(evaluate.main, [str(out), "--attacks", "random-sign", "--budget", "tries=1"], prog="evaluate")
    assert code == 0 and "random-sign" in capsys.readouterr().out


def test_every_module_of_the_registry_packages_is_imported() -> None:
    for package in (trainables.attacks, trainables.models):
        folder = Path(package.__file__).parent
        modules = {p.stem for p in folder.glob("*.py") if not p.stem.startswith("_")}
        missing = [m for m in modules if f"{package.__name__}.{m}" not in sys.modules]
        assert not missing, (package.__name__, missing)


def test_each_architecture_is_registered_once_and_gets_every_family(monkeypatch) -> None:
    assert set(list_models()) == {f.model_name(a) for f in FAMILIES.values() for a in ("cnn", "wrn")}

    @register_architecture("mlp")
    def mlp(cfg, info, make_activation, make_noise):  # noqa: ANN001, ANN202 - a test double
        from trainables.models import RobustModel

        class MLP(RobustModel):
            def __init__(self) -> None:
                super().__init__()
                hidden = cfg.hidden_blocks * cfg.competitors
                self.net = nn.Sequential(nn.Flatten(), nn.Linear(info.channels * info.size ** 2, hidden),
                                         make_activation(hidden), make_noise(), nn.Linear(hidden, info.classes))

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return self.net(x)

        return MLP()

    try:
        assert {"mlp", "lwta-mlp", "pni-mlp"} <= set(list_models())
        info = trainables.data.DATASETS["fashion-mnist"][0]
        lwta = build_model(ModelConfig(name="lwta-mlp", hidden_blocks=4), info)
        assert lwta.stochastic and lwta(torch.rand(3, 1, 28, 28)).shape == (3, 10)
        assert not build_model(ModelConfig(name="mlp"), info).stochastic
    finally:
        model_registry.ARCHITECTURES.remove("mlp")


def test_bad_input_is_one_line_but_a_bug_keeps_its_traceback(capsys) -> None:
    def bad_input(argv):  # noqa: ANN001, ANN202
        raise ValueError("epsilon must be >= 0, got eps=-1")

    def bug(argv):  # noqa: ANN001, ANN202
        raise RuntimeError("CUDA out of memory")

    def warns(argv):  # noqa: ANN001, ANN202
        warnings.warn("stochastic model attacked without EOT", UserWarning, stacklevel=1)
        return 0

    assert run_main(bad_input, [], prog="prog") == 2
    assert capsys.readouterr().err == "prog: error: epsilon must be >= 0, got eps=-1\n"
    with pytest.raises(RuntimeError, match="out of memory"):
        run_main(bug, [], prog="prog")
    assert run_main(warns, [], prog="prog") == 0
    assert capsys.readouterr().err == "prog: warning: stochastic model attacked without EOT (UserWarning)\n"


def test_a_stochastic_model_attacked_without_eot_warns(fmnist) -> None:
    model = build_model(ModelConfig(name="lwta-cnn", cnn_width=8, cnn_kernel=3, hidden_blocks=4), fmnist.info)
    test = fmnist.test.head(8)
    with pytest.warns(trainables.evaluation.RobustnessWarning, match="without EOT"):
        evaluate_robustness(model, test.floats(), test.labels, SuiteConfig(eot_samples=1), ThreatModel())

