"""Robust accuracy as a per-example worst case over a suite of attacks."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import torch
from torch import Tensor, nn

from trainables.attacks import Attack, ThreatModel
from trainables.models.base import (
    evaluating,
    is_stochastic,
    model_device,
    predict,
    scoring_layout,
    surrogate_gradients,
)
from trainables.rng import private_rng

from .result import RobustResult
from .suite import GradientWay, SuiteConfig

__all__ = ["FOLLOW_UP_SHARE", "ProgressFn", "RobustnessWarning", "evaluate_robustness", "stream_key",
           "warn_if_unreliable"]

ProgressFn = Callable[[str, int, int], None]  # (what runs now, batches done, batches expected)

# An attack with a follow-up (Square's ``follow_up``) that broke more than this share of a batch runs it on
# what the batch still holds. On an eps-0.1 export 300 Square queries broke none of what the gradient
# attacks left (no follow-up, no cost); Square's own margins, on fewer prediction draws, "broke" enough
# of those batches to cost 70 s of follow-ups that broke nothing: the share is counted as accuracy is.
FOLLOW_UP_SHARE = 0.01


class RobustnessWarning(UserWarning):
    """An evaluation whose robust accuracy is likely overestimated."""


def warn_if_unreliable(model: nn.Module, suite: SuiteConfig) -> None:
    """Warn (``RobustnessWarning``) when a stochastic model is attacked with a single gradient draw."""
    if suite.attacks and suite.eot_samples == 1 and is_stochastic(model):
        warnings.warn("stochastic model attacked without EOT (eot_samples 1): its robust accuracy is likely "
                      "overestimated", RobustnessWarning, stacklevel=3)


def stream_key(outcome: str) -> str:
    """The name of an outcome's private random stream: the outcome key, with the sampled way under its first name.

    Sampled gradients were once called "plain"; their streams keep that name, so that a seed scores
    exactly as it did before the rename.
    """
    name, sep, way = outcome.partition("/")
    return f"{name}/plain" if sep and way == GradientWay.SAMPLED else outcome


def _follow_up(model: nn.Module, attack: Attack, x: Tensor, y: Tensor, x_adv: Tensor, right: Tensor,
               predict_samples: int) -> tuple[Tensor, Tensor]:
    """``x_adv`` and ``right`` (b,) after ``attack``'s follow-up on what still stands, when the attack has one and
    broke more than FOLLOW_UP_SHARE of the batch; as they were otherwise."""
    follow = attack.follow_up_attack()
    if follow is None or (~right).float().mean().item() <= FOLLOW_UP_SHARE or not bool(right.any()):
        return x_adv, right
    standing = right.nonzero().squeeze(1)  # (s,)
    again = follow.perturb(model, x[standing], y[standing])
    x_adv, right = x_adv.clone(), right.clone()
    x_adv[standing] = again
    right[standing] = predict(model, again, predict_samples) == y[standing]
    return x_adv, right


def evaluate_robustness(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    suite: SuiteConfig,
    threat: ThreatModel,
    *,
    device: torch.device | str | None = None,
    keep_adversarial: bool = False,
    progress: ProgressFn | None = None,
) -> RobustResult:
    """Evaluate ``model`` on images (N, C, H, W) in [0, 1] (or uint8) under every attack of the suite at ``threat``.

    Attacks run on the naturally correct examples, or in a cascade only on those still robust in
    the attack's own threat model (its norm), so that each ball's worst case (``worst_for``) is a
    cascade of its own; worst = natural AND every attack, per example. A stochastic model is attacked once per way of
    taking its gradients the suite lists; a deterministic one once, its outcome standing for every
    way. Each run draws from its own seeded stream, so adding an attack never changes another's
    outcome. ``keep_adversarial`` returns the inputs each run produced. ``progress`` hears of every
    batch (the expected count assumes each later run attacks what is still robust now). The model
    runs in eval mode; its training flag is restored afterwards.
    """
    cfg = suite
    if images.shape[0] != labels.shape[0] or images.shape[0] == 0:
        raise ValueError(f"need a non-empty batch with one label per image, got "
                         f"{tuple(images.shape)=}, {tuple(labels.shape)=}")
    device = model_device(model) if device is None else torch.device(device)
    x_all = images.float() / 255 if images.dtype == torch.uint8 else images.float()  # (N, C, H, W)
    y_all = labels.long()  # (N,)
    n, bs = x_all.shape[0], cfg.batch_size
    stochastic = is_stochastic(model)
    warn_if_unreliable(model, cfg)
    adversarial: dict[str, Tensor] | None = {} if keep_adversarial else None
    passes = cfg.passes(threat, stochastic)
    waiting = [key for key, way, attack in passes if not cfg.repeats(way, attack, stochastic)]  # runs not started yet
    done = 0

    def tick(label: str, left: int, pool: int) -> None:
        """One more batch of ``label``; ``left`` remain in it, later runs attack at most ``pool`` examples."""
        nonlocal done
        done += 1
        if progress is not None:
            progress(label, done, done + max(left, 0) + len(waiting) * math.ceil(pool / bs))

    with evaluating(model), scoring_layout(model, device):
        natural = torch.zeros(n, dtype=torch.bool)
        with private_rng(cfg.seed, device, key="natural"):
            for i in range(0, n, bs):
                xb, yb = x_all[i:i + bs].to(device), y_all[i:i + bs].to(device)
                natural[i:i + bs] = (predict(model, xb, cfg.predict_samples) == yb).cpu()
                tick("natural", math.ceil((n - i - bs) / bs), n)
        still = {attack.norm: natural.clone() for _, _, attack in passes}  # per norm: (N,) not yet broken
        per_attack: dict[str, Tensor] = {}
        for key, way, attack in passes:
            if cfg.repeats(way, attack, stochastic):  # the same gradients (or none at all): the same outcome
                per_attack[key] = per_attack[attack.name]
                if adversarial is not None:
                    adversarial[key] = adversarial[attack.name]
                continue
            targets = (still[attack.norm] if cfg.cascade else natural).nonzero().squeeze(1)  # (n_targets,)
            robust = torch.zeros(n, dtype=torch.bool)
            kept = x_all.clone() if adversarial is not None else None
            waiting.remove(key)
            surrogate = way == GradientWay.SURROGATE and stochastic
            with private_rng(cfg.seed, device, key=stream_key(key)), surrogate_gradients(model, surrogate):
                for i in range(0, targets.numel(), bs):
                    idx = targets[i:i + bs]
                    xb, yb = x_all[idx].to(device), y_all[idx].to(device)
                    x_adv = attack.perturb(model, xb, yb)
                    right = predict(model, x_adv, cfg.predict_samples) == yb  # (b,)
                    x_adv, right = _follow_up(model, attack, xb, yb, x_adv, right, cfg.predict_samples)
                    robust[idx] = right.cpu()
                    if kept is not None:
                        kept[idx] = x_adv.cpu()
                    tick(key, math.ceil((targets.numel() - i - bs) / bs), targets.numel())
            per_attack[key] = robust
            still[attack.norm] &= robust
            if adversarial is not None and kept is not None:
                adversarial[key] = kept
    return RobustResult.from_outcomes(natural, per_attack, adversarial)
