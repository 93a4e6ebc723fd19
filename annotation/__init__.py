"""Labelling photos with progression stages: what to label, Label Studio, rater agreement.

Pure domain code (no web framework): the API and CLI call these functions.
"""

from annotation.labelstudio import (
    AnnotationRow,
    LabelStudioClient,
    PushResult,
    TaskSpec,
    label_config,
    parse_webhook,
)
from annotation.selection import STRATEGIES, select_for_labelling, stage_uncertainty
from training.agreement import AgreementReport, Figure, compute_agreement

__all__ = [
    "STRATEGIES",
    "AgreementReport",
    "AnnotationRow",
    "Figure",
    "LabelStudioClient",
    "PushResult",
    "TaskSpec",
    "compute_agreement",
    "label_config",
    "parse_webhook",
    "select_for_labelling",
    "stage_uncertainty",
]
