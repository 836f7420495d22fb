"""Bundles: k runs of one shape trained as one horizontally fused model (HFTA), each member's run its own.

A bundle's layers hold every member's weights side by side (:mod:`.layers`, :mod:`.model`); each
member draws and runs its own training attacks at its own radius (:mod:`.attack`), steps with its own
optimiser settings (:mod:`.optim`), and is scored, kept at its best epoch and checkpointed as the
single model it is (:mod:`.loop`). Which runs may share a bundle: :mod:`.members`.
"""

from .attack import MemberBatch, attack_members
from .loop import (
    BUNDLE_CHECKPOINT,
    BundleCheckpointError,
    MemberEnd,
    MemberEpoch,
    MemberOutcome,
    fit_bundle,
    load_member,
)
from .measure import FusionCost, fusion_costs
from .members import MEMBER_MODEL_FIELDS, MEMBER_TRAIN_FIELDS, bundle_key, check_bundle
from .model import BundledModel, bundle_models
from .optim import MemberSGD

__all__ = [
    "BUNDLE_CHECKPOINT",
    "MEMBER_MODEL_FIELDS",
    "MEMBER_TRAIN_FIELDS",
    "BundleCheckpointError",
    "BundledModel",
    "FusionCost",
    "MemberBatch",
    "MemberEnd",
    "MemberEpoch",
    "MemberOutcome",
    "MemberSGD",
    "attack_members",
    "bundle_key",
    "bundle_models",
    "check_bundle",
    "fit_bundle",
    "fusion_costs",
    "load_member",
]
