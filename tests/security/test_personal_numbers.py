"""Free text never carries a personal identity number: measures, ratings and imports refuse one."""

from __future__ import annotations

import pytest

from core.domain import personal_number_problem, text_problem
from profiles.measures import MeasureError, validate


@pytest.mark.parametrize(
    "text",
    [
        "811218-9876",  # Skatteverket's example number
        "198112189876",  # with the century, no separator
        "Extra stöd för 811218-9876 i gruppen",
        "121212+1212",  # over 100 years old: '+'
        "701063-2391",  # a coordination number (day + 60)
    ],
)
def test_personal_identity_numbers_are_found(text):
    problem = personal_number_problem(text, "description")
    assert problem is not None and "description" in problem and "personal identity" in problem


@pytest.mark.parametrize(
    "text",
    [
        "811218-9877",  # the check digit is wrong
        "2026-12-03",
        "Termin 2026-HT, 18 barn, 3 pedagoger",
        "070-123 45 67",
        "Läsning 20 min varje dag från 2026-08-17",
    ],
)
def test_dates_counts_and_numbers_that_fail_the_check_pass(text):
    assert personal_number_problem(text) is None and text_problem(text, multiline=True) is None


def test_a_measure_naming_a_child_by_number_is_refused():
    fields = {
        "title": "Språkstöd",
        "area": "language_communication",
        "start_term": "2026-HT",
        "decided_by": "Rektor och arbetslaget",
        "description": "Gäller barnet 811218-9876",
    }
    with pytest.raises(MeasureError, match="description.*personal identity number"):
        validate(fields)
    assert validate({**fields, "description": "Gäller hela gruppen"})["description"]
