"""The vocabulary shared by every Spira package: stages, age bands, curriculum areas, terms.

Nothing here identifies a child. Everything Spira stores or shows is keyed by unit, group, term and
age band (docs/architecture.md, principle 1).
"""

from __future__ import annotations

import datetime as dt
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


# ---- the window of plausible dates ---------------------------------------------------------------

#: The earliest date Spira accepts from a client (photos, sheets, ratings, context terms).
EARLIEST_DATE = dt.date(2000, 1, 1)
#: How far ahead of today a date may lie (clock skew between a tablet and the server).
DAYS_AHEAD = 1


def latest_date(today: dt.date | None = None) -> dt.date:
    """The latest date accepted: one day ahead of today (server time)."""
    return (today or dt.date.today()) + dt.timedelta(days=DAYS_AHEAD)


def date_problem(value: dt.date, field: str = "date") -> str | None:
    """Why ``value`` lies outside the window of plausible dates, naming ``field``; None if inside.

    The one place the window is defined: every date a client sends is checked with this (or
    :func:`check_date`), and ``spira doctor`` finds stored rows outside it.
    """
    latest = latest_date()
    if isinstance(value, dt.datetime):
        value = value.date()
    if not EARLIEST_DATE <= value <= latest:
        return (
            f"{field} {value.isoformat()} lies outside {EARLIEST_DATE.isoformat()} to "
            f"{latest.isoformat()} (tomorrow); give the date the work was done"
        )
    return None


def check_date(value: dt.date, field: str = "date") -> dt.date:
    """``value`` if it lies in the window of plausible dates, else ValueError naming ``field``."""
    problem = date_problem(value, field)
    if problem:
        raise ValueError(problem)
    return value


def term_problem(text: object, field: str = "term") -> str | None:
    """Why ``text`` is not a usable term (form YYYY-VT/YYYY-HT, year within the date window);
    None if it is."""
    try:
        term = Term.parse(str(text))
    except ValueError as err:
        return f"{field}: {err}"
    latest = latest_date()
    if not EARLIEST_DATE.year <= term.year <= latest.year:
        return f"{field} {text!s} lies outside the years {EARLIEST_DATE.year} to {latest.year}"
    return None


def check_term(text: str, field: str = "term") -> str:
    """``text`` if it is a usable term (see :func:`term_problem`), else ValueError."""
    problem = term_problem(text, field)
    if problem:
        raise ValueError(problem)
    return text


# ---- free text -----------------------------------------------------------------------------------

#: Characters refused in free text: C0 controls but tab and newline, DEL, C1 controls, and the
#: bidirectional overrides and isolates that can make text display differently from what it is.
_FORBIDDEN_TEXT = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]"
)


def text_problem(value: str, field: str = "text", *, multiline: bool = False) -> str | None:
    """Why ``value`` may not be stored as free text (a control or bidi-override character; a
    newline or tab unless ``multiline``; a personal identity number), naming ``field`` and the
    character or position; None if it may."""
    m = _FORBIDDEN_TEXT.search(value)
    if m is None and not multiline:
        m = re.search("[\t\n]", value)
    if m is None:
        return personal_number_problem(value, field)
    return (
        f"{field} contains the control character U+{ord(m.group()):04X} at position "
        f"{m.start() + 1}; remove it"
    )


#: A Swedish personal identity or coordination number: (CC)YYMMDD, an optional - or +, four
#: digits. Counted only when the date part is plausible (month 01-12; day 01-31, or 61-91 for a
#: coordination number) and the last digit is the Luhn check of the ten, so dates, phone numbers
#: and counts in free text pass.
_PERSONAL_NUMBER = re.compile(r"(?<!\d)(?:19|20)?(\d{2})(0[1-9]|1[0-2])(\d{2})[-+]?(\d{4})(?!\d)")


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(digits):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def personal_number_problem(value: str, field: str = "text") -> str | None:
    """Why ``value`` may not be stored: it holds what looks like a Swedish personal identity (or
    coordination) number, naming ``field`` and the position; None if it does not."""
    for m in _PERSONAL_NUMBER.finditer(value):
        yy, mm, dd, last = m.groups()
        day = int(dd)
        if (1 <= day <= 31 or 61 <= day <= 91) and _luhn_ok(yy + mm + dd + last):
            return (
                f"{field} contains what looks like a personal identity number at position "
                f"{m.start() + 1}; Spira stores nothing that identifies a child or an adult: "
                "remove it"
            )
    return None


def check_text(value: str, field: str = "text", *, multiline: bool = False) -> str:
    """``value`` if it is acceptable free text (see :func:`text_problem`), else ValueError."""
    problem = text_problem(value, field, multiline=multiline)
    if problem:
        raise ValueError(problem)
    return value
