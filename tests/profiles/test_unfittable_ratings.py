"""Stored ratings the assessment model cannot fit never break the profiles or the research page."""

from __future__ import annotations

from sqlalchemy import update

from cli.demo import seed_context_and_ratings, seed_structure
from core.db import migrate, session_factory
from core.models import Rating
from profiles.queries import ability_frame


def test_ratings_all_at_one_level_leave_abilities_empty_instead_of_failing(spira_env):
    migrate()
    factory = session_factory()
    with factory() as session:
        units = seed_structure(session)
        session.commit()
        _, n_sheets = seed_context_and_ratings(session, units, seed=7)
        session.commit()
        assert n_sheets > 2
        table, model = ability_frame(session, min_n=5)
        assert model is not None and not table.empty  # the demo ratings fit

        session.execute(update(Rating).values(level=0))  # every rating at the lowest level
        session.commit()
        table, model = ability_frame(session, min_n=5)
        assert model is None
        assert table.empty
        assert "two or more levels" in table.attrs["fit_error"]
