"""Training losses beyond the attacked cross-entropy: TRADES (Zhang et al. 2019).

TRADES trades natural for robust accuracy through one weight, ``beta``: the loss is the clean
cross-entropy plus ``beta`` times the KL divergence of the prediction on the attacked input from
the prediction on the clean one (``batchmean``, gradients through both, as in the authors' code),
and its L-inf PGD climbs that KL rather than the cross-entropy (:class:`~trainables.attacks.PGDKL`,
swapped in by :func:`~trainables.train.mix.training_attacks`). The other attacks of a run's mix
(FGSM, CW, noise, clean batches) keep their own objectives.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from trainables.train.config import TrainConfig

__all__ = ["needs_clean", "run_loss", "trades_loss"]


def needs_clean(cfg: TrainConfig) -> bool:
    """Whether the run's loss reads the model on the clean inputs too (a clean term, or TRADES)."""
    return cfg.clean_weight > 0 or cfg.trades_beta > 0


def run_loss(logits: Tensor, clean_logits: Tensor | None, y: Tensor, cfg: TrainConfig) -> Tensor:
    """One run's training loss on a batch (a scalar), as single runs and bundle members alike compute it.

    The attacked cross-entropy; with ``clean_logits`` (see :func:`needs_clean`) either TRADES or
    ``clean_weight * CE(clean) + (1 - clean_weight) * CE(attacked)``.
    """
    if clean_logits is None:
        return F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
    if cfg.trades_beta > 0:
        return trades_loss(clean_logits, logits, y, cfg.trades_beta, cfg.label_smoothing)
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
