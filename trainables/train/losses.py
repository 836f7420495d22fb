"""Training losses beyond the attacked cross-entropy: TRADES (Zhang et al. 2019) and MART (Wang et al. 2020).

TRADES trades natural for robust accuracy through one weight, ``beta``: the loss is the clean
cross-entropy plus ``beta`` times the KL divergence of the prediction on the attacked input from
the prediction on the clean one (``batchmean``, gradients through both, as in the authors' code),
and its L-inf PGD climbs that KL rather than the cross-entropy (:class:`~trainables.attacks.PGDKL`,
swapped in by :func:`~trainables.train.mix.training_attacks`). The other attacks of a run's mix
(FGSM, CW, noise, clean batches) keep their own objectives.

MART weighs what TRADES treats alike: its attacks climb the cross-entropy as plain adversarial
training's do, and the loss is the *boosted* cross-entropy on the attacked input (the cross-entropy
plus a margin term, -log(1 - the largest wrong-class probability)) plus ``beta`` times the KL
divergence of the attacked prediction from the clean one, each example's KL weighted by how
*mis*classified its clean input is (1 - the clean probability of its label), as in the authors' code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from trainables.train.config import TrainConfig

__all__ = ["mart_loss", "needs_clean", "run_loss", "trades_loss"]


def needs_clean(cfg: TrainConfig) -> bool:
    """Whether the run's loss reads the model on the clean inputs too (a clean term, TRADES or MART)."""
    return cfg.clean_weight > 0 or cfg.trades_beta > 0 or cfg.mart_beta > 0


def run_loss(logits: Tensor, clean_logits: Tensor | None, y: Tensor, cfg: TrainConfig) -> Tensor:
    """One run's training loss on a batch (a scalar), as single runs and bundle members alike compute it.

    The attacked cross-entropy; with ``clean_logits`` (see :func:`needs_clean`) TRADES, MART or
    ``clean_weight * CE(clean) + (1 - clean_weight) * CE(attacked)``.
    """
    if clean_logits is None:
        return F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
    if cfg.trades_beta > 0:
        return trades_loss(clean_logits, logits, y, cfg.trades_beta, cfg.label_smoothing)
    if cfg.mart_beta > 0:
        return mart_loss(clean_logits, logits, y, cfg.mart_beta, cfg.label_smoothing)
    clean = F.cross_entropy(clean_logits, y, label_smoothing=cfg.label_smoothing)
    attacked = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
    return cfg.clean_weight * clean + (1 - cfg.clean_weight) * attacked


def trades_loss(clean_logits: Tensor, adv_logits: Tensor, y: Tensor, beta: float, label_smoothing: float = 0.0
                ) -> Tensor:
    """CE(clean) + beta * KL(p_clean || p_adv), averaged over the batch (a scalar)."""
    natural = F.cross_entropy(clean_logits, y, label_smoothing=label_smoothing)
    robust = F.kl_div(F.log_softmax(adv_logits.float(), dim=1), F.log_softmax(clean_logits.float(), dim=1),
                      reduction="batchmean", log_target=True)
    return natural + beta * robust


def mart_loss(clean_logits: Tensor, adv_logits: Tensor, y: Tensor, beta: float, label_smoothing: float = 0.0
              ) -> Tensor:
    """BCE(attacked) + beta * mean((1 - p_y(clean)) * KL(p_clean || p_adv)), a scalar (Wang et al. 2020, eq. 7).

    BCE is the boosted cross-entropy: CE(attacked) - log(1 - max over wrong classes of p(attacked)).
    """
    adv_probs = F.softmax(adv_logits.float(), dim=1)  # (B, K)
    wrong = adv_probs.scatter(1, y[:, None], -1.0).argmax(dim=1)  # (B,) the likeliest wrong class
    margin = -torch.log((1.0001 - adv_probs.gather(1, wrong[:, None]).squeeze(1)).clamp_min(1e-12))  # (B,)
    boosted = F.cross_entropy(adv_logits, y, label_smoothing=label_smoothing) + margin.mean()
    clean_log_probs = F.log_softmax(clean_logits.float(), dim=1)  # (B, K)
    kl = F.kl_div(torch.log(adv_probs + 1e-12), clean_log_probs, reduction="none", log_target=True).sum(1)  # (B,)
    misclassified = 1.0 - clean_log_probs.exp().gather(1, y[:, None]).squeeze(1)  # (B,)
    return boosted + beta * (kl * misclassified).mean()
