"""Bundles: k runs of one shape trained as one model match the k runs trained apart."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from trainables.attacks import FGSM, PGD, PGDL2, GaussianNoise, ThreatModel
from trainables.bundle import MemberSGD, attack_members, bundle_models, check_bundle, fit_bundle
from trainables.data import DATASETS, DataConfig, Splits
from trainables.evaluation import SuiteConfig
from trainables.models import ModelConfig, RobustModel, build_model
from trainables.train import AttackMix, RunSpec, TrainConfig, fit
from tuner.export import export_model, load_model

INFO = DATASETS["fashion-mnist"][0]


def _models(config: ModelConfig, seeds: tuple[int, ...] = (0, 1, 2), **per_member) -> list[RobustModel]:
    models = []
    for i, seed in enumerate(seeds):
        torch.manual_seed(seed)
        member = replace(config, **{k: v[i] for k, v in per_member.items()})
        models.append(build_model(member, INFO))
    return models


DETERMINISTIC = {
    "relu cnn": ModelConfig(name="cnn", cnn_width=8, cnn_kernel=3, hidden_blocks=8),
    "relu cnn, pool first": ModelConfig(name="cnn", cnn_width=8, cnn_kernel=3, hidden_blocks=8, cnn_pool_first=True),
    "argmax lwta cnn": ModelConfig(name="lwta-cnn", cnn_width=8, cnn_kernel=3, hidden_blocks=8, ibp=False,
                                   inference="argmax"),
    "relu wrn-10": ModelConfig(name="wrn", depth=10),
    "pni cnn at alpha 0": ModelConfig(name="pni-cnn", cnn_width=8, cnn_kernel=3, hidden_blocks=8, pni_init=0.0),
}


@pytest.mark.parametrize("name", list(DETERMINISTIC))
def test_a_bundle_computes_each_members_outputs_and_gradients(name: str) -> None:
    models = [m.eval() for m in _models(DETERMINISTIC[name])]
    bundle = bundle_models(models).eval()
    x = torch.rand(3, 5, 1, 28, 28, requires_grad=True)  # (k, B, C, H, W): each member its own inputs
    out = bundle(x)
    assert out.shape == (3, 5, 10)
    weights = torch.randn_like(out)
    (out * weights).sum().backward()
    for m, model in enumerate(models):
        xm = x[m].detach().requires_grad_(True)
        alone = model(xm)
        torch.testing.assert_close(out[m], alone, atol=2e-5, rtol=1e-4)
        (alone * weights[m]).sum().backward()
        torch.testing.assert_close(x.grad[m], xm.grad, atol=2e-5, rtol=1e-4)
        grads = {n: p.grad for n, p in model.named_parameters()}
        for n, g in _member_grads(bundle, m).items():
            if not n.endswith(".alpha"):  # PNI's scale: its gradient is the noise it drew
                torch.testing.assert_close(g, grads[n], atol=1e-4, rtol=1e-3, msg=n)


def _member_grads(bundle, m: int) -> dict[str, torch.Tensor]:
    from trainables.bundle.layers import member_tensor

    return {n: member_tensor(p.grad, bundle.k, m, bundle._shapes[n]) for n, p in bundle.body.named_parameters()}


def test_members_come_back_as_the_single_models_they_were() -> None:
    config = ModelConfig(name="lwta-cnn", cnn_width=8, cnn_kernel=3, hidden_blocks=8)
    models = _models(config, ibp_alpha=(1.0, 3.0, 9.0))
    bundle = bundle_models(models)
    for m, model in enumerate(models):
        mine = bundle.member_state_dict(m)
        assert mine.keys() == model.state_dict().keys()
        assert all(torch.equal(mine[k], v) for k, v in model.state_dict().items())
    states = [bundle.member_state_dict(m) for m in (2, 0, 1)]
    bundle.load_members(states)
    assert torch.equal(bundle.member_state_dict(0)["hidden.weight"], models[2].state_dict()["hidden.weight"])


def test_stochastic_layers_draw_each_members_distribution() -> None:
    """LWTA + IBP at three alphas, PNI at three scales, smoothing at three sigmas: per member as alone."""
    torch.manual_seed(0)
    lwta = _models(ModelConfig(name="lwta-cnn", cnn_width=8, cnn_kernel=3, hidden_blocks=8, ibp=True),
                   ibp_alpha=(1.0, 3.0, 9.0))
    bundle = bundle_models(lwta)
    kl = torch.stack([bundle.kl_members() for _ in range(300)]).mean(0)  # (k,) the sticks are sampled
    alone = torch.tensor([torch.stack([m.kl() for _ in range(300)]).mean().item() for m in lwta])
    torch.testing.assert_close(kl, alone, rtol=0.05, atol=0.5)
    x = torch.rand(1, 1, 28, 28).expand(400, -1, -1, -1)
    bundle.train()
    together = bundle(x).mean(dim=1)  # (k, classes): the relaxed winners' expectation over 400 draws
    for m, model in enumerate(lwta):
        torch.testing.assert_close(together[m], model.train()(x).mean(dim=0), atol=0.15, rtol=0.1)

    noisy = _models(ModelConfig(name="pni-cnn", cnn_width=8, cnn_kernel=3, hidden_blocks=8), pni_init=(0.1, 0.3, 0.6))
    layer = next(m for m in bundle_models(noisy).modules() if type(m).__name__ == "BundledNoiseInjection")
    h = torch.randn(64, 3 * 16, 6, 6) * torch.tensor([1.0, 2.0, 3.0]).repeat_interleave(16).view(1, -1, 1, 1)
    spread = (layer(h) - h).transpose(0, 1).reshape(3, -1).std(dim=1)
    expected = torch.tensor([0.1 * 1.0, 0.3 * 2.0, 0.6 * 3.0])
    torch.testing.assert_close(spread, expected, rtol=0.05, atol=0.0)

    smoothed = _models(ModelConfig(name="cnn", cnn_width=8, cnn_kernel=3), input_noise=(0.1, 0.25, 0.5))
    noise = next(m for m in bundle_models(smoothed).modules() if type(m).__name__ == "BundledGaussianInput")
    z = torch.zeros(2000, 3, 28, 28)
    torch.testing.assert_close(noise(z).transpose(0, 1).reshape(3, -1).std(dim=1), torch.tensor([0.1, 0.25, 0.5]),
                               rtol=0.02, atol=0.0)


def test_members_of_other_shapes_cannot_share_a_bundle() -> None:
    a = RunSpec(model=ModelConfig(name="lwta-cnn", hidden_blocks=8))
    b = replace(a, train=replace(a.train, lr=0.2, mix=AttackMix.parse("fgsm:1")), model=replace(a.model, ibp_alpha=5.0))
    check_bundle([a, b])  # the optimiser, the mix and the prior may differ
    with pytest.raises(ValueError, match="model.hidden_blocks"):
        check_bundle([a, replace(a, model=replace(a.model, hidden_blocks=16))])
    with pytest.raises(ValueError, match="train.batch_size"):
        check_bundle([a, replace(a, train=replace(a.train, batch_size=64))])
    with pytest.raises(ValueError, match="differ in architecture"):
        bundle_models(_models(DETERMINISTIC["relu cnn"], (0,)) + _models(DETERMINISTIC["relu wrn-10"], (0,)))


def test_member_sgd_steps_each_member_as_torch_sgd_would() -> None:
    torch.manual_seed(0)
    settings = [(0.1, 0.9, 5e-4, True), (0.02, 0.0, 0.0, False), (0.3, 0.5, 1e-3, False)]
    singles = [torch.nn.Parameter(torch.randn(4, 3)) for _ in settings]
    bundled = torch.nn.Parameter(torch.cat([p.detach() for p in singles]))
    torch_opts = [torch.optim.SGD([p], lr=lr, momentum=mom, weight_decay=wd, nesterov=nest)
                  for p, (lr, mom, wd, nest) in zip(singles, settings, strict=True)]
    ours = MemberSGD([(bundled, True)], 3, *[[s[i] for s in settings] for i in range(4)])
    for factor in (1.0, 0.5, 0.25):
        grads = [torch.randn(4, 3) for _ in settings]
        for p, g, opt in zip(singles, grads, torch_opts, strict=True):
            for group in opt.param_groups:
                group["lr"] = group.setdefault("initial", group["lr"]) * factor
            p.grad = g.clone()
            opt.step()
        bundled.grad = torch.cat(grads)
        ours.set_factor(factor)
        ours.step()
    torch.testing.assert_close(bundled.detach(), torch.cat([p.detach() for p in singles]), atol=1e-6, rtol=1e-5)


def test_each_member_is_attacked_at_its_own_radius() -> None:
    models = [m.eval() for m in _models(DETERMINISTIC["relu cnn"])]
    bundle = bundle_models(models).eval()
    x, y = torch.rand(6, 1, 28, 28), torch.randint(0, 10, (6,))
    radii = (0.05, 0.1, 0.2)
    for spec in (FGSM(), PGD(steps=3, random_start=False), PGDL2(steps=3, random_start=False)):
        attacks = [spec.bind(ThreatModel(r, 10 * r)) for r in radii]
        together = attack_members(bundle, x, y, attacks)  # (k, B, C, H, W)
        for m, model in enumerate(models):
            alone = attacks[m].perturb(model, x, y)
            torch.testing.assert_close(together[m], alone, atol=1e-5, rtol=1e-4, msg=f"{spec.name} member {m}")
    noisy = attack_members(bundle, x, y, [GaussianNoise().bind(ThreatModel(r)) for r in radii])
    assert all(((noisy[m] - x).abs().max() <= r + 1e-6) for m, r in enumerate(radii))
    clean = attack_members(bundle, x, y, [None, FGSM().bind(ThreatModel(0.1)), None])
    assert torch.equal(clean[0], x) and torch.equal(clean[2], x) and not torch.equal(clean[1], x)


# ------------------------------------------------------------------------------------ training

def _tiny(fmnist: Splits) -> Splits:
    return Splits(fmnist.train.head(256), fmnist.val.head(64), fmnist.test.head(64), fmnist.info)


def _runs() -> list[RunSpec]:
    """Three runs of one shape that differ in everything a member may: optimiser, loss (TRADES too), attacks,
    radius and its warm-up, weight averaging.

    One seed, as every trial of a search has: a bundle's members see the same batches, in the first
    member's order, and trained apart these runs draw that order too.
    """
    base = RunSpec(data=DataConfig(), model=DETERMINISTIC["relu cnn"],
                   train=TrainConfig(epochs=2, batch_size=64, lr=0.05, schedule="onecycle", eval_limit=64,
                                     precision="fp32", mix=AttackMix.parse("pgd:1", budgets=(PGD(steps=2),))),
                   suite=SuiteConfig(attacks=(FGSM(), PGD(steps=3)), eot_samples=1, predict_samples=1),
                   threat=ThreatModel(0.1, 1.5))
    t = base.train
    no_start = PGD(steps=2, random_start=False)  # deterministic: the members must match to float tolerance
    return [
        replace(base, train=replace(t, mix=AttackMix.parse("pgd:1", budgets=(no_start,)), eps_scale=1.0,
                                    ema_decay=0.9)),
        replace(base, train=replace(t, lr=0.1, momentum=0.5, weight_decay=1e-3, label_smoothing=0.1,
                                    mix=AttackMix.parse("fgsm:1"), eps_scale=0.75, trades_beta=3.0)),
        replace(base, train=replace(t, lr=0.02, nesterov=False, clean_weight=0.3, eps_scale=1.25, ema_decay=0.5,
                                    eps_warmup=0.5,
                                    mix=AttackMix.parse("none:1,pgd:1", budgets=(no_start,)))),
    ]


@pytest.mark.gpu
@pytest.mark.parametrize("model", [ModelConfig(name="lwta-cnn", cnn_width=8, cnn_kernel=3, hidden_blocks=8),
                                   ModelConfig(name="wrn", depth=10)], ids=["lwta cnn with ibp", "relu wrn-10"])
def test_a_bundle_trains_on_the_gpu(fmnist: Splits, model: ModelConfig) -> None:
    # the bundled convolutions, norms and IBP buffers are made new: they must follow the members to the GPU
    splits = _tiny(fmnist)
    runs = [replace(spec, model=model, train=replace(spec.train, epochs=1, ema_decay=0.0)) for spec in _runs()]
    outcomes = fit_bundle(runs, splits, device="cuda")
    assert [o.ended for o in outcomes] == ["finished"] * len(runs)
    assert all(0.0 <= o.history[-1]["robust_acc"] <= o.history[-1]["natural_acc"] <= 1.0 for o in outcomes)


@pytest.mark.slow
def test_a_bundle_trains_like_its_members_trained_apart(fmnist: Splits) -> None:
    splits, runs = _tiny(fmnist), _runs()
    apart = [fit(spec, splits) for spec in runs]
    together = fit_bundle(runs, splits)
    for m, (alone, outcome) in enumerate(zip(apart, together, strict=True)):
        assert outcome.ended == "finished" and len(outcome.history) == 2
        for key in ("train_loss", "train_acc", "natural_acc", "robust_acc", "lr"):
            got, want = [h[key] for h in outcome.history], [h[key] for h in alone.history]
            assert got == pytest.approx(want, abs=2e-3), (m, key)
        theirs = alone.model.state_dict()
        for name, value in outcome.weights.items():
            torch.testing.assert_close(value, theirs[name].cpu(), atol=2e-3, rtol=2e-3, msg=f"member {m}: {name}")


@pytest.mark.slow
def test_a_dropped_member_leaves_the_bundle_and_stops_costing_compute(fmnist: Splits, monkeypatch, tmp_path) -> None:
    from trainables.bundle import loop

    splits, runs = _tiny(fmnist), _runs()
    runs = [replace(r, train=replace(r.train, epochs=3)) for r in runs]
    sizes: list[int] = []
    real = loop.attack_members
    monkeypatch.setattr(loop, "attack_members", lambda bundle, *a: sizes.append(bundle.k) or real(bundle, *a))
    heard: list[list[int]] = []

    def prune(reports, folder):
        heard.append([r.member for r in reports])
        assert folder == tmp_path and (folder / loop.BUNDLE_CHECKPOINT).is_file()
        return {1} if len(heard) == 1 else set()

    outcomes = fit_bundle(runs, splits, checkpoint_dir=tmp_path, on_epoch=prune)
    per_epoch = math.ceil(256 / 64)
    assert sizes == [3] * per_epoch + [2] * 2 * per_epoch  # the second and third epochs train two members
    assert heard == [[0, 1, 2], [0, 2], [0, 2]]
    assert outcomes[1].ended == "dropped" and len(outcomes[1].history) == 1
    assert [len(o.history) for o in (outcomes[0], outcomes[2])] == [3, 3]


@pytest.mark.slow
def test_a_bundle_resumes_from_its_checkpoint_as_if_never_stopped(fmnist: Splits, tmp_path: Path) -> None:
    splits, runs = _tiny(fmnist), _runs()
    whole = fit_bundle(runs, splits)

    def crash(reports, folder):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit_bundle(runs, splits, checkpoint_dir=tmp_path, on_epoch=crash)
    resumed = fit_bundle(runs, splits, checkpoint_dir=tmp_path)
    for a, b in zip(whole, resumed, strict=True):
        assert [h["robust_acc"] for h in a.history] == pytest.approx([h["robust_acc"] for h in b.history], abs=1e-6)
        assert all(torch.allclose(v, b.weights[k], atol=1e-6) for k, v in a.weights.items())


@pytest.mark.slow
def test_a_stochastic_bundle_resumes_on_the_random_stream_it_stopped_on(fmnist: Splits, tmp_path: Path) -> None:
    # LWTA's Gumbel draws come from torch's global stream: rebuilding the bundle on resume must not move it
    splits = _tiny(fmnist)
    lwta = ModelConfig(name="lwta-cnn", cnn_width=8, cnn_kernel=3, hidden_blocks=8)
    runs = [replace(spec, model=lwta, train=replace(spec.train, ema_decay=0.0)) for spec in _runs()[:2]]
    whole = fit_bundle(runs, splits)
    stopped: list[int] = []

    def crash(reports, folder):
        stopped.append(1)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit_bundle(runs, splits, checkpoint_dir=tmp_path, on_epoch=crash)
    torch.manual_seed(12345)  # another process: whatever its stream, the checkpoint's is the one it goes on with
    resumed = fit_bundle(runs, splits, checkpoint_dir=tmp_path)
    assert stopped == [1]
    for a, b in zip(whole, resumed, strict=True):
        assert [h["train_loss"] for h in a.history] == pytest.approx([h["train_loss"] for h in b.history], rel=1e-6)
        assert all(torch.allclose(v.float(), b.weights[k].float(), atol=1e-6) for k, v in a.weights.items())


@pytest.mark.slow
def test_an_exported_member_loads_as_an_ordinary_model(fmnist: Splits, tmp_path: Path) -> None:
    splits, runs = _tiny(fmnist), _runs()
    runs = [replace(r, train=replace(r.train, epochs=1)) for r in runs]
    outcome = fit_bundle(runs, splits)[1]
    model = build_model(runs[1].model, splits.info)
    model.load_state_dict(outcome.weights)
    out = export_model(model.eval(), runs[1], tmp_path / "member", info=splits.info, metrics={}, command="test",
                       space="adversarial")
    loaded = load_model(out)
    x = splits.test.head(16).floats()
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))


@pytest.mark.slow
def test_a_warm_member_trains_on_from_the_weights_it_is_given(fmnist: Splits, tmp_path: Path) -> None:
    from trainables.train import CheckpointError

    splits, runs = _tiny(fmnist), [replace(r, train=replace(r.train, epochs=1)) for r in _runs()[:2]]
    weights = {k: v.clone() for k, v in fit(runs[0], splits).model.state_dict().items()}
    warm = fit_bundle(runs, splits, initial=[weights, None])  # a promoted point beside a trial from scratch
    apart = fit(runs[0], splits, initial=weights)
    torch.testing.assert_close(warm[0].history[0]["robust_acc"], apart.history[0]["robust_acc"], atol=2e-3, rtol=0)
    for name, value in warm[0].weights.items():
        torch.testing.assert_close(value, apart.model.state_dict()[name].cpu(), atol=2e-3, rtol=2e-3, msg=name)
    cold = fit_bundle(runs, splits)
    assert all(torch.equal(v, cold[1].weights[k]) for k, v in warm[1].weights.items())  # its companion: untouched
    assert not all(torch.equal(v, cold[0].weights[k]) for k, v in warm[0].weights.items())

    fit_bundle(runs, splits, checkpoint_dir=tmp_path)  # a bundle with a checkpoint resumes it: no warm start
    odd = {k: v[..., :1] for k, v in weights.items()}
    again = fit_bundle(runs, splits, checkpoint_dir=tmp_path, initial=[odd, None])
    assert [len(o.history) for o in again] == [1, 1]
    with pytest.raises(CheckpointError, match="warm-start weights do not fit the cnn model"):
        fit_bundle(runs, splits, initial=[odd])
    with pytest.raises(ValueError, match="3 initial weights for a bundle of 2 runs"):
        fit_bundle(runs, splits, initial=[None] * 3)
