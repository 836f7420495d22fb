"""Model export: safetensors round trip, sha256 tamper check, model card and the evaluate CLI."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from trainables.attacks import FGSM, PGD, ThreatModel
from trainables.cli import run_main
from trainables.data import DATASETS, DataConfig, Splits, batches
from trainables.evaluation import SuiteConfig, evaluate_robustness
from trainables.models import ModelConfig, RobustModel, build_model
from trainables.train import RunSpec, TrainConfig
from tuner import evaluate
from tuner.export import (
    CONFIG_FILE,
    EXPORT_FORMAT,
    METRICS_FILE,
    README_FILE,
    WEIGHTS_FILE,
    ExportError,
    claim_warnings,
    evaluate_for_export,
    export_model,
    load_export,
    load_model,
    masking_warning,
    recorded_threat,
)

ROOT = Path(__file__).resolve().parents[1]
INFO = DATASETS["fashion-mnist"][0]
SUITE = SuiteConfig(attacks=(FGSM(), PGD(steps=3)), eot_samples=2, predict_samples=2)
COMMAND = "python -m tuner.search --space cnn --preset quick --seed 0"
SUMMARY = re.compile(r"natural ([\d.]+)% worst-case robust ([\d.]+)%")


def _spec(name: str = "cnn") -> RunSpec:
    return RunSpec(data=DataConfig(train_limit=4000, val_limit=500, test_limit=500),
                   model=ModelConfig(name=name, hidden_blocks=8), train=TrainConfig(epochs=1, seed=3), suite=SUITE)


def _trained_cnn(splits: Splits) -> RobustModel:
    """A small CNN after 20 Adam steps on 640 real images (about 60% accurate; chance is 10%)."""
    torch.manual_seed(0)
    model = build_model(_spec().model, INFO)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    model.train()
    for x, y in batches(splits.train.head(640), 32, generator=torch.Generator().manual_seed(0)):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def exported(fmnist: Splits, tmp_path_factory: pytest.TempPathFactory) -> tuple[RobustModel, Path, dict]:
    """(trained model, export directory, metrics) of one cnn export, shared by the module."""
    model = _trained_cnn(fmnist)
    small = Splits(fmnist.train, fmnist.val.head(100), fmnist.test.head(100), fmnist.info)
    metrics = evaluate_for_export(model, small, SUITE, ThreatModel())
    out = tmp_path_factory.mktemp("export") / "best"
    export_model(model, _spec(), out, info=fmnist.info, metrics=metrics, command=COMMAND, space="cnn",
                 params={"lr": 0.05, "mix": "none:1,fgsm:1"}, provenance={"trial": "t0"})
    return model, out, metrics


def _copy(src: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(src, tmp_path / "copy"))


def _cli(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tuner.evaluate", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_export_writes_four_files_and_loads_identical_outputs(exported, fmnist) -> None:
    model, out, _ = exported
    assert sorted(p.name for p in out.iterdir()) == sorted([WEIGHTS_FILE, CONFIG_FILE, METRICS_FILE, README_FILE])
    loaded = load_model(out)
    assert not loaded.training
    x = fmnist.test.head(64).floats()
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert load_model(out / CONFIG_FILE).state_dict().keys() == model.state_dict().keys()


def test_config_records_sha256_spec_and_provenance(exported) -> None:
    _, out, _ = exported
    config = json.loads((out / CONFIG_FILE).read_text())
    assert config["format"] == EXPORT_FORMAT and config["space"] == "cnn"
    assert config["sha256"] == hashlib.sha256((out / WEIGHTS_FILE).read_bytes()).hexdigest()
    assert RunSpec.from_dict(config["spec"]) == _spec()
    assert config["params"] == {"lr": 0.05, "mix": "none:1,fgsm:1"}
    prov = config["provenance"]
    assert prov["torch"] == torch.__version__ and prov["seed"] == 3 and prov["trial"] == "t0"
    assert prov["git_revision"] is None or re.fullmatch(r"[0-9a-f]{40}", prov["git_revision"])
    assert {"ray", "optuna", "python", "hostname", "cpu", "gpu", "created"} <= set(prov)


def test_metrics_round_trip_and_sane_accuracies(exported, fmnist) -> None:
    _, out, metrics = exported
    assert json.loads((out / METRICS_FILE).read_text()) == json.loads(json.dumps(metrics))
    for split in ("validation", "test"):
        m = metrics[split]
        probed = {"convergence/stronger_gap"} if split == "test" else set()  # the convergence check: test only
        assert set(m) == {"natural_acc", "robust_acc", "robust_acc/linf", "acc/fgsm", "acc/pgd"} | probed
        assert 0.0 <= m["robust_acc"] <= min(m["acc/fgsm"], m["acc/pgd"]) <= m["natural_acc"] <= 1.0
        assert m["natural_acc"] > 0.3  # a few steps on real data; chance is 0.10
    assert 0.0 <= metrics["test"]["convergence/stronger_gap"] <= metrics["test"]["robust_acc/linf"]  # of 100 images
    assert metrics["probe"] == {"steps_x": 2, "eot_x": 2, "examples": 100}
    assert SuiteConfig.from_dict(metrics["suite"]) == SUITE
    assert metrics["examples"] == {"validation": 100, "test": 100}
    export = load_export(out)
    assert export.spec == _spec() and export.info == fmnist.info
    assert export.metrics["test"] == metrics["test"] and export.config["format"] == EXPORT_FORMAT


def test_readme_has_command_threat_model_and_table(exported) -> None:
    _, out, metrics = exported
    card = (out / README_FILE).read_text()
    assert COMMAND in card and "from tuner.export import load_model" in card
    assert "L-inf epsilon: 0.1" in card and "L2 epsilon: 1.5" in card
    assert "| accuracy | validation (100 examples) | test (100 examples) |" in card
    val, test = (f"{100 * metrics[s]['natural_acc']:.2f}%" for s in ("validation", "test"))
    assert f"| natural | {val} | {test} |" in card
    assert "| pgd |" in card and "| **worst case** |" in card and "| `lr` | `0.05` |" in card


def test_a_masking_gap_or_an_unconverged_attack_above_its_limit_is_a_warning_line_and_below_it_none() -> None:
    gap = "masking/gradient_free_gap"
    assert masking_warning({"test": {"robust_acc": 0.5}}) is None  # no gradient-free attack ran
    assert masking_warning({"validation": {gap: 0.02}, "test": {gap: 0.03}}) is None  # at the limit
    line = masking_warning({"validation": {gap: 0.045}, "test": {gap: 0.0395}})
    assert line is not None and "\n" not in line
    assert line.startswith("Square broke 4.50% of the validation images") and "limit 3%" in line
    probed = {"test": {"convergence/stronger_gap": 0.05}, "probe": {"steps_x": 2, "eot_x": 2}}
    assert claim_warnings({"test": {"convergence/stronger_gap": 0.02}}) == []  # at the limit
    [converging] = claim_warnings(probed)
    assert "2x the steps and 2x the EOT draws broke 5.0% more of the first 100 test images" in converging
    assert "about 5 points too high" in converging and len(claim_warnings(probed | {"validation": {gap: 0.04}})) == 2


def test_a_format_1_export_still_loads_with_its_threat_model(exported, tmp_path: Path) -> None:
    """Exports written before the threat model moved beside the suites (format 1) load as they were scored."""
    _, out, metrics = exported
    old = _copy(out, tmp_path)
    config = json.loads((old / CONFIG_FILE).read_text())
    spec = config["spec"]
    spec["suite"] = {**spec["suite"], "threat": spec.pop("threat") | {"eps": 0.07}, "gradients": ["plain"]}
    old_metrics = {**metrics, "suite": {**metrics["suite"], "threat": {"eps": 0.07, "l2_eps": 1.5}}}
    del old_metrics["threat"]
    (old / CONFIG_FILE).write_text(json.dumps({**config, "format": "robustune-export/1"}))
    (old / METRICS_FILE).write_text(json.dumps(old_metrics))
    export = load_export(old)
    assert export.spec.threat == ThreatModel(0.07, 1.5) and export.spec.suite.gradients == ("sampled",)
    assert recorded_threat(export.metrics, export.spec) == ThreatModel(0.07, 1.5)
    assert export.metrics["test"] == metrics["test"]


def test_lwta_state_dict_round_trip_and_seeded_outputs(tmp_path: Path, fmnist) -> None:
    torch.manual_seed(1)
    model = build_model(_spec("lwta-cnn").model, INFO).eval()
    export_model(model, _spec("lwta-cnn"), tmp_path, info=INFO, metrics={}, command="c", space="lwta")
    loaded = load_model(tmp_path)
    a, b = model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    x = fmnist.test.head(16).floats()
    with torch.no_grad():
        torch.manual_seed(7)
        first = model(x)
        torch.manual_seed(7)
        assert torch.equal(first, loaded(x))


def test_reexport_replaces_files_leaves_no_temp_files_and_keeps_the_rng(tmp_path: Path) -> None:
    model = build_model(_spec().model, INFO)
    rng = torch.get_rng_state()
    for space in ("one", "two"):
        export_model(model, _spec(), tmp_path, info=INFO, metrics={"run": space}, command="c", space=space)
    assert len(list(tmp_path.iterdir())) == 4
    assert load_export(tmp_path).config["space"] == "two"
    assert torch.equal(rng, torch.get_rng_state())


def test_export_refuses_a_model_that_does_not_match_its_spec(tmp_path: Path) -> None:
    model = build_model(ModelConfig(name="cnn", hidden_blocks=4), INFO)
    with pytest.raises(ValueError, match="does not match spec.model"):
        export_model(model, _spec(), tmp_path / "x", info=INFO, metrics={}, command="c", space="s")
    assert not (tmp_path / "x").exists()


def test_flipped_byte_is_refused_by_load_and_cli(exported, tmp_path: Path) -> None:
    copy = _copy(exported[1], tmp_path)
    weights = bytearray((copy / WEIGHTS_FILE).read_bytes())
    weights[len(weights) // 2] ^= 0x01
    (copy / WEIGHTS_FILE).write_bytes(bytes(weights))
    with pytest.raises(ExportError, match="does not match the sha256 in config.json"):
        load_model(copy)
    done = _cli(copy)
    assert done.returncode == 2 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "sha256" in lines[0]


def _edit_model(directory: Path, **sizes: int) -> None:
    config = json.loads((directory / CONFIG_FILE).read_text())
    config["spec"]["model"].update(sizes)  # the weights and their sha256 stay as they were
    (directory / CONFIG_FILE).write_text(json.dumps(config))


@pytest.mark.parametrize("sizes, needle", [
    ({"hidden_blocks": 10**6}, "hidden_blocks must be in [1, 16384], got 1000000"),
    ({"depth": 6 * 10**6 + 4, "name": "wrn"}, "depth must be 6n + 4"),
    # within the bounds, but 3.3 billion weights (13 GB) if built: refused from the shapes alone
    ({"cnn_width": 1024, "hidden_blocks": 16384}, "does not fit model.safetensors: "),
])
def test_an_export_whose_sizes_were_edited_is_refused_before_anything_is_allocated(
        exported, tmp_path: Path, sizes: dict, needle: str) -> None:
    copy = _copy(exported[1], tmp_path)
    _edit_model(copy, **sizes)
    began = time.perf_counter()
    with pytest.raises(ExportError, match=re.escape(needle)):
        load_model(copy)
    assert time.perf_counter() - began < 5
    done = _cli(copy)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and needle in lines[0], lines


@pytest.mark.parametrize("mutate, match", [
    (lambda d: (d / WEIGHTS_FILE).unlink(), "model.safetensors is missing"),
    (lambda d: (d / CONFIG_FILE).unlink(), "config.json is missing"),
    (lambda d: (d / CONFIG_FILE).write_text("{\"format\": "), "not valid JSON"),
    (lambda d: (d / CONFIG_FILE).write_text(json.dumps(
        {**json.loads((d / CONFIG_FILE).read_text()), "format": "robustune-export/99"})), "format"),
])
def test_load_refuses_broken_exports(exported, tmp_path: Path, mutate, match: str) -> None:
    copy = _copy(exported[1], tmp_path)
    mutate(copy)
    with pytest.raises(ExportError, match=match):
        load_model(copy)


@pytest.mark.parametrize("extra, needle", [
    (["--epsilon", "-1"], "eps must be a finite number in [0, 1]"),
    (["--epsilon", "nan"], "eps=nan"),
    (["--epsilon", "1.5"], "in [0, 1]"),
    (["--l2-epsilon", "inf"], "l2_eps=inf"),
    (["--eot-samples", "0"], "eot_samples must be >= 1"),
    (["--budget", "cw.steps=3"], "cannot set cw.steps"),
    (["--attacks", "fgsm,nope"], "unknown attack"),
    (["--limit", "0"], "--limit must be >= 1"),
    (["--device", "nosuch"], "unknown device 'nosuch': cpu, cuda or cuda:N"),
    (["--device", "mps"], "robustune runs on cpu or cuda"),
])
def test_cli_rejects_bad_flags_in_one_line(exported, capsys, extra: list[str], needle: str) -> None:
    assert run_main(evaluate.main, [str(exported[1]), *extra], prog=evaluate.PROG) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], lines


def test_cli_missing_directory_is_one_line(tmp_path: Path, capsys) -> None:
    assert run_main(evaluate.main, [str(tmp_path / "nowhere")], prog=evaluate.PROG) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "no export directory" in lines[0], lines


def test_cli_evaluates_and_matches_in_process_numbers(exported, fmnist) -> None:
    model, out, _ = exported
    done = _cli(out, "--limit", 100, "--attacks", "fgsm", "--device", "cpu")
    assert done.returncode == 0, done.stderr
    assert "worst case" in done.stdout and "fgsm" in done.stdout
    found = SUMMARY.search(done.stdout)
    assert found, done.stdout
    natural, robust = map(float, found.groups())
    assert 0.0 <= robust <= natural <= 100.0 and natural > 30.0
    test = fmnist.test.head(100)
    expect = evaluate_robustness(model, test.floats(), test.labels, SUITE.select(["fgsm"]), ThreatModel(),
                                 device="cpu")
    assert natural == pytest.approx(100 * expect.natural_acc, abs=1.0)
    assert robust == pytest.approx(100 * expect.worst_acc, abs=1.0)


def test_a_stochastic_export_takes_the_worst_case_over_both_ways_of_taking_gradients(fmnist: Splits,
                                                                                      tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_model(_spec("lwta-cnn").model, INFO).eval()
    small = Splits(fmnist.train, fmnist.val.head(20), fmnist.test.head(40), fmnist.info)
    suite = replace(SUITE, gradients=("surrogate", "sampled"))
    metrics = evaluate_for_export(model, small, suite, ThreatModel())
    assert metrics["examples"] == {"validation": 20, "test": 40}
    for split in ("validation", "test"):
        m = metrics[split]
        assert {"acc/fgsm", "acc/fgsm/sampled", "acc/pgd", "acc/pgd/sampled"} <= set(m)
        assert 0.0 <= m["robust_acc"] <= min(m["acc/pgd"], m["acc/pgd/sampled"]) <= m["natural_acc"] <= 1.0
    out = export_model(model, _spec("lwta-cnn"), tmp_path / "lwta", info=fmnist.info, metrics=metrics,
                       command=COMMAND, space="lwta", params={}, provenance={})
    card = (out / README_FILE).read_text()
    assert "| pgd/sampled |" in card and "through surrogate and sampled gradients" in card



def test_the_export_scores_in_processes_and_evaluate_repeats_its_figures(fmnist: Splits, tmp_path: Path,
                                                                        capsys) -> None:
    torch.manual_seed(0)
    model = build_model(_spec("lwta-cnn").model, INFO).eval()  # stochastic: the shards' draws must match too
    small = Splits(fmnist.train, fmnist.val.head(20), fmnist.test.head(60), fmnist.info)
    metrics = evaluate_for_export(model, small, SUITE, ThreatModel(), workers=2)
    assert metrics["workers"] == 2 and metrics["examples"] == {"validation": 20, "test": 60}
    out = export_model(model, _spec("lwta-cnn"), tmp_path / "lwta", info=fmnist.info, metrics=metrics,
                       command=COMMAND, space="lwta", params={}, provenance={})
    assert run_main(evaluate.main, [str(out), "--limit", "60", "--device", "cpu"], prog=evaluate.PROG) == 0
    natural, robust = map(float, SUMMARY.search(capsys.readouterr().out).groups())  # the same 2 shards
    assert (natural, robust) == (round(100 * metrics["test"]["natural_acc"], 2),
                                 round(100 * metrics["test"]["robust_acc"], 2))
    assert run_main(evaluate.main, [str(out), "--workers", "0"], prog=evaluate.PROG) == 2
    assert "--workers must be >= 1" in capsys.readouterr().err


def test_an_export_is_data_its_data_location_and_downloads_are_ignored(exported, tmp_path: Path, capsys) -> None:
    copy = _copy(exported[1], tmp_path)
    config = json.loads((copy / CONFIG_FILE).read_text())
    bait = tmp_path / "created-by-the-export"
    config["spec"]["data"] |= {"download": True, "data_dir": str(bait / ".." / ".." / "etc")}
    (copy / CONFIG_FILE).write_text(json.dumps(config))
    assert run_main(evaluate.main, [str(copy), "--limit", "20", "--attacks", "fgsm"], prog=evaluate.PROG) == 0
    assert "worst-case robust" in capsys.readouterr().out
    assert not bait.exists()  # read from the default location; nothing created, nothing downloaded
    from tuner.report.candidates import exported_candidates

    (candidate,) = exported_candidates([copy], 10, torch.device("cpu"))
    assert len(candidate.test) == 10 and not bait.exists()
