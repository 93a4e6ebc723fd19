"""calibration ratings: educators' levels on the case library's calibration responses (no unit)

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "calibration_rating",
        sa.Column("response_id", sa.String(length=80), nullable=False),
        sa.Column("item", sa.String(length=80), nullable=False),
        sa.Column("rater", sa.String(length=80), nullable=False),
        sa.Column("case_id", sa.String(length=80), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("rated_on", sa.Date(), nullable=False),
        sa.Column("term", sa.String(length=8), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["created_by"], ["app_user.id"]),
        sa.PrimaryKeyConstraint("response_id", "item", "rater"),
    )


def downgrade() -> None:
    op.drop_table("calibration_rating")
