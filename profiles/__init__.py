"""Unit profiles: progression, assessment and context triangulated into development areas.

The numerical and domain core; the database side is ``profiles.queries`` (reading),
``profiles.store`` (writing) and ``profiles.service`` (the cached profiles); API wiring lives in api.
"""

from profiles.context import (
    CONTEXT_COLUMNS,
    REFERENCES,
    ContextFileError,
    ContextProblem,
    municipality_means,
    read_context_file,
)
from profiles.export import export_profiles, profiles_table, read_profiles_export
from profiles.model import ContextModel, WhatIfResult
from profiles.profile import OUTCOMES, build_profiles, fit_context_models, observations, what_if
from profiles.progression import photo_expected_stage, progression_from_photos, stage_distribution
from profiles.schemas import UnitProfile
from profiles.synthetic import SyntheticProfileData, make_synthetic

__all__ = [
    "CONTEXT_COLUMNS",
    "OUTCOMES",
    "REFERENCES",
    "ContextFileError",
    "ContextModel",
    "ContextProblem",
    "SyntheticProfileData",
    "UnitProfile",
    "WhatIfResult",
    "build_profiles",
    "export_profiles",
    "fit_context_models",
    "make_synthetic",
    "municipality_means",
    "observations",
    "photo_expected_stage",
    "profiles_table",
    "progression_from_photos",
    "read_context_file",
    "read_profiles_export",
    "stage_distribution",
    "what_if",
]
