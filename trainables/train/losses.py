"""Training losses beyond the attacked cross-entropy: TRADES (Zhang et al. 2019) and the attacks it trains on.

TRADES trades natural for robust accuracy through one weight, ``beta``: the loss is the clean
cross-entropy plus ``beta`` times the KL divergence of the prediction on the attacked input from
the prediction on the clean one (``batchmean``, gradients through both, as in the authors' code),
and its L-inf PGD climbs that KL rather than the cross-entropy (:class:`~trainables.attacks.PGDKL`).
The other attacks of a run's mix (FGSM, CW, noise, clean batches) keep their own objectives.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from trainables.attacks import PGD, PGDKL, Attack, ThreatModel
from trainables.train.mix import AttackMix

__all__ = ["trades_loss", "training_attacks"]


def trades_loss(clean_logits: Tensor, adv_logits: Tensor, y: Tensor, beta: float, label_smoothing: float = 0.0
                ) -> Tensor:
    """CE(clean) + beta * KL(p_clean || p_adv), averaged over the batch (a scalar)."""
    natural = F.cross_entropy(clean_logits, y, label_smoothing=label_smoothing)
    robust = F.kl_div(F.log_softmax(adv_logits.float(), dim=1), F.log_softmax(clean_logits.float(), dim=1),
                      reduction="batchmean", log_target=True)
    return natural + beta * robust


def training_attacks(mix: AttackMix, threat: ThreatModel, trades_beta: float) -> tuple[Attack | None, ...]:
    """Per mix entry, its attack at ``threat``'s radii (None: clean); with TRADES, L-inf PGD climbs the KL."""
    bound = mix.bound(threat)
    if trades_beta <= 0:
        return bound
    return tuple(PGDKL.of(a) if type(a) is PGD else a for a in bound)
