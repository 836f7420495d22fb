"""Fuzzed inputs a user or a shared folder can hand in: an export's config.json, a progress.json, ``--budget``.

Whatever hypothesis makes of them, each is taken or refused as a user error (one line and exit 2
under ``run_main``), never a traceback, and never grows this process by more than a bounded amount.
"""

from __future__ import annotations

import json
import resource
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trainables.cli import USER_ERRORS, run_main

# the same examples on every run (a CI failure is a real one, reproduced by rerunning), no database written
FUZZ: dict[str, Any] = {"deadline": None, "derandomize": True, "database": None,
                        "suppress_health_check": [HealthCheck.function_scoped_fixture]}
MAX_GROWTH_KB = 1 << 20  # 1 GiB of peak resident memory over a whole property

JSON = st.recursive(st.none() | st.booleans() | st.integers(-(10**15), 10**15) | st.floats() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                    max_leaves=6)
NUMBERS = st.integers(-(10**12), 10**12) | st.floats() | st.none() | st.booleans() | st.text(max_size=4)


def _peak_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


@pytest.fixture(scope="module")
def export_dir(fmnist, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained small CNN's export (its figures do not matter here)."""
    from trainables.attacks import FGSM, ThreatModel
    from trainables.data import DataConfig, Splits
    from trainables.evaluation import SuiteConfig
    from trainables.models import ModelConfig, build_model
    from trainables.train import RunSpec, TrainConfig
    from tuner.export import evaluate_for_export, export_model

    spec = RunSpec(data=DataConfig(), model=ModelConfig(name="lwta-cnn", hidden_blocks=8), train=TrainConfig(epochs=1),
                   suite=SuiteConfig(attacks=(FGSM(),)))
    model = build_model(spec.model, fmnist.info).eval()
    small = Splits(fmnist.train.head(20), fmnist.val.head(20), fmnist.test.head(20), fmnist.info)
    metrics = evaluate_for_export(model, small, SuiteConfig(attacks=(FGSM(),), eot_samples=1, predict_samples=1),
                                  ThreatModel())
    out = tmp_path_factory.mktemp("fuzz") / "export"
    export_model(model, spec, out, info=fmnist.info, metrics=metrics, command="fuzz", space="lwta", params={},
                 provenance={})
    return out


MODEL_FIELDS = ("depth", "widen", "competitors", "hidden_blocks", "cnn_width", "cnn_kernel", "name", "ibp_alpha",
                "temperature", "lwta_layers")
INFO_FIELDS = ("channels", "size", "classes", "mean", "std", "name")


@settings(max_examples=120, **FUZZ)
@given(where=st.sampled_from([("spec", "model", f) for f in MODEL_FIELDS] + [("dataset_info", f) for f in INFO_FIELDS]),
       value=NUMBERS | JSON)
def test_an_edited_config_json_loads_or_is_refused_as_a_user_error(export_dir: Path, where: tuple[str, ...],
                                                                   value: Any) -> None:
    from tuner.export import load_model

    before = _peak_kb()
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(shutil.copytree(export_dir, Path(tmp) / "export"))
        config = json.loads((copy / "config.json").read_text())
        holder = config
        for key in where[:-1]:
            holder = holder[key]
        holder[where[-1]] = value  # the weights and their sha256 stay the real ones
        (copy / "config.json").write_text(json.dumps(config))
        try:
            load_model(copy)
        except USER_ERRORS:
            pass
    assert _peak_kb() - before < MAX_GROWTH_KB


TRIAL_ROW = st.dictionaries(st.sampled_from(["trial_id", "params", "epoch", "natural", "robust", "objective",
                                             "outcome", "suspect", "reason", "ended_at", "other"]),
                            NUMBERS | JSON, max_size=6)


@settings(max_examples=150, **FUZZ)
@given(progress=st.fixed_dictionaries(
    {"counts": JSON},
    optional={"trials": st.lists(TRIAL_ROW, max_size=3) | JSON, "num_samples": NUMBERS, "max_epochs": NUMBERS,
              "updated": NUMBERS, "elapsed_s": NUMBERS, "phase": NUMBERS | JSON, "space": NUMBERS | JSON}))
def test_a_found_progress_json_is_shown_or_refused_as_a_user_error(tmp_path: Path, capsys,
                                                                   progress: dict[str, Any]) -> None:
    from tuner.search import cli

    before = _peak_kb()
    experiment = Path(tempfile.mkdtemp(dir=tmp_path)) / "found"
    experiment.mkdir()
    (experiment / "progress.json").write_text(json.dumps(progress))
    code = run_main(cli.main, ["--storage-path", str(experiment.parent), "--status", "found"], prog=cli.PROG)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 0 or (code == 2 and len(err) == 1), err
    assert _peak_kb() - before < MAX_GROWTH_KB


class _Started(Exception):
    """A search whose settings all passed: the fuzz stops it there."""


@settings(max_examples=200, **FUZZ)
@given(budget=st.text(alphabet="acdefgilmnoprstuvwx0123456789._=,-+ ", max_size=30)
       | st.sampled_from(["pgd.steps=", "pgd.steps=1e400", "step_size=nan", "fgsm.eps=1", "apgd-ce.steps=-3",
                          "pgd.restarts=99999999999", "cw.c=inf", "pgd.step_ratio=0", "pgd.steps=2.5"]))
def test_any_budget_is_taken_or_refused_in_one_line_before_ray_starts(tmp_path: Path, capsys, monkeypatch,
                                                                      budget: str) -> None:
    from tuner.search import cli, resolve_run

    def settings_checked(cfg: Any, command: str) -> None:
        resolve_run(cfg)
        raise _Started

    monkeypatch.setattr(cli, "run_search", settings_checked)
    try:
        code = run_main(cli.main, ["--storage-path", str(tmp_path / "runs"), "--budget", budget], prog=cli.PROG)
    except _Started:
        return
    except SystemExit as exc:  # argparse's own refusal
        code = exc.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
