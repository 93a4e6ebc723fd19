"""Educators' assessments: case library, ratings import, many-facet partial credit model, unit abilities.

Typical use::

    library = load_case_library()                      # the shipped cases (assessment/cases/)
    ratings = read_ratings("ratings.xlsx", library)    # RatingsFileError lists every problem
    model = ManyFacetPCM().fit(ratings)                # thresholds_, severity_, ability_ (logits)
    units = unit_abilities(model.sheet_table())        # per unit x area x term, with se and n

Nothing here identifies a child: a sheet is an anonymous response sheet of a unit, group, age band
and term. This package never imports FastAPI.
"""

from .cases import (
    DEFAULT_CASE_DIR,
    Case,
    CaseFileError,
    CaseLibrary,
    CaseLibraryError,
    RubricItem,
    RubricLevel,
    load_case_library,
    validate_case_library,
)
from .model import Anchors, ManyFacetPCM, ModelFitWarning
from .ratings import RATING_COLUMNS, RatingProblem, RatingsFileError, read_ratings, validate_ratings
from .synthetic import SyntheticTruth, simulate_ratings
from .units import UnitAbility, unit_abilities, unit_abilities_frame

__all__ = [
    "DEFAULT_CASE_DIR",
    "RATING_COLUMNS",
    "Anchors",
    "Case",
    "CaseFileError",
    "CaseLibrary",
    "CaseLibraryError",
    "ManyFacetPCM",
    "ModelFitWarning",
    "RatingProblem",
    "RatingsFileError",
    "RubricItem",
    "RubricLevel",
    "SyntheticTruth",
    "UnitAbility",
    "load_case_library",
    "read_ratings",
    "simulate_ratings",
    "unit_abilities",
    "unit_abilities_frame",
    "validate_case_library",
    "validate_ratings",
]
