"""Export a trained model as safetensors + JSON + a model card, score it, and load it back verified.

An export directory holds ``model.safetensors`` (the state dict), ``config.json`` (format, run spec,
dataset info, searched hyperparameters, the weights' sha256 and provenance), ``metrics.json``
(validation and test accuracies under the export suite) and ``README.md`` (the model card).
Loading reads JSON and safetensors only, never pickle, and refuses weights whose sha256 differs
from the one recorded in config.json.
"""

from tuner.export.best import LATEST, DamagedCheckpoint, ExportRequest, export_best
from tuner.export.card import (
    accuracy_table,
    claim_warnings,
    masking_warning,
    model_card,
    recorded_suite,
    recorded_threat,
)
from tuner.export.files import (
    CONFIG_FILE,
    EXPORT_FORMAT,
    METRICS_FILE,
    README_FILE,
    WEIGHTS_FILE,
    Export,
    ExportError,
    export_model,
)
from tuner.export.load import load_export, load_model
from tuner.export.scoring import evaluate_for_export

__all__ = [
    "CONFIG_FILE",
    "EXPORT_FORMAT",
    "LATEST",
    "METRICS_FILE",
    "README_FILE",
    "DamagedCheckpoint",
    "WEIGHTS_FILE",
    "Export",
    "ExportError",
    "ExportRequest",
    "accuracy_table",
    "claim_warnings",
    "evaluate_for_export",
    "export_best",
    "export_model",
    "load_export",
    "masking_warning",
    "load_model",
    "model_card",
    "recorded_suite",
    "recorded_threat",
]
