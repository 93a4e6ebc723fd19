"""The vocabulary shared by every Spira package: stages, age bands, curriculum areas, terms.

Nothing here identifies a child. Everything Spira stores or shows is keyed by unit, group, term and
age band (see DESIGN.md, principle 1).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Ordinal drawing-progression stages (after Lowenfeld and Kellogg), index = stage number.
STAGES: tuple[str, ...] = (
    "random scribble",
    "controlled scribble",
    "named scribble / first enclosed shapes",
    "pre-schematic",
    "schematic",
)
N_STAGES = len(STAGES)

#: One line per stage, shown to researchers labelling and to principals reading a profile.
STAGE_DESCRIPTIONS: tuple[str, ...] = (
    "0 random scribble (about 1–2.5 years)",
    "1 controlled scribble: repeated lines and loops (2.5–3)",
    "2 named scribble / first enclosed shapes: circles, crosses (3–4)",
    "3 pre-schematic: first symbols, tadpole figures, objects floating on the page (4–6)",
    "4 schematic: figures with bodies, ground and sky line, ordered space (6–8)",
)

#: The children's age band of a group, in years. Strings so they read the same in CSV, API and UI.
AGE_BANDS: tuple[str, ...] = ("1-2", "2-3", "3-4", "4-5", "5-6")

#: Stage a typical child of the age band reaches (mid-band age mapped through the stage age ranges
#: above). Used to age-adjust a unit's progression: observed mean stage minus this expectation.
EXPECTED_STAGE_BY_AGE_BAND: dict[str, float] = {
    "1-2": 0.3,
    "2-3": 0.9,
    "3-4": 1.8,
    "4-5": 2.6,
    "5-6": 3.2,
}

#: Curriculum areas of Lpfö 18 used for cases.
CURRICULUM_AREAS: tuple[str, ...] = (
    "language_communication",
    "mathematics",
    "science_technology",
    "creative_expression",
    "social_emotional",
)
AREA_LABELS: dict[str, dict[str, str]] = {
    "language_communication": {"sv": "Språk och kommunikation", "en": "Language and communication"},
    "mathematics": {"sv": "Matematik", "en": "Mathematics"},
    "science_technology": {"sv": "Naturvetenskap och teknik", "en": "Science and technology"},
    "creative_expression": {"sv": "Skapande och estetiska uttryck", "en": "Creative expression"},
    "social_emotional": {
        "sv": "Social och emotionell utveckling",
        "en": "Social and emotional development",
    },
}

ROLES: tuple[str, ...] = ("educator", "principal", "researcher", "admin")

#: Default minimum number of observations behind any figure that is shown.
MIN_GROUP_SIZE = 5

_TERM_RE = re.compile(r"^(\d{4})-(VT|HT)$")


@dataclass(frozen=True, order=True)
class Term:
    """A preschool term: VT (spring, January–June) or HT (autumn, August–December)."""

    year: int
    half: int  # 0 = VT, 1 = HT, so tuples sort chronologically

    @classmethod
    def parse(cls, text: str) -> Term:
        """Parse "2026-HT" / "2026-VT"; raises ValueError naming the expected form."""
        m = _TERM_RE.match(text.strip())
        if not m:
            raise ValueError(f"term {text!r} is not of the form YYYY-VT or YYYY-HT")
        return cls(int(m.group(1)), 0 if m.group(2) == "VT" else 1)

    @classmethod
    def of_month(cls, year: int, month: int) -> Term:
        """The term a date falls in (July counts to the spring term that just ended)."""
        return cls(year, 1 if month >= 8 else 0)

    def __str__(self) -> str:
        return f"{self.year}-{'VT' if self.half == 0 else 'HT'}"


def term_sort_key(term: str) -> tuple[int, int]:
    """Chronological sort key for a term string."""
    t = Term.parse(term)
    return (t.year, t.half)


def check_age_band(age_band: str) -> str:
    """Return the age band if known, else raise ValueError listing the known ones."""
    if age_band not in AGE_BANDS:
        raise ValueError(f"age band {age_band!r} is not one of {', '.join(AGE_BANDS)}")
    return age_band
