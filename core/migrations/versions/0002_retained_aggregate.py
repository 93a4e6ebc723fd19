"""retained aggregates: stage figures of photos removed by retention

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "retained_aggregate",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("term", sa.String(length=8), nullable=False),
        sa.Column("age_band", sa.String(length=8), nullable=False),
        sa.Column("model_version", sa.String(length=80), nullable=False),
        sa.Column("n_photos", sa.Integer(), nullable=False),
        sa.Column("sum_stage", sa.Float(), nullable=False),
        sa.Column("sum_sq_stage", sa.Float(), nullable=False),
        sa.Column("stage_prob_sums", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["unit_id"], ["unit.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "unit_id", "term", "age_band", "model_version", name="uq_retained_cell"
        ),
    )
    with op.batch_alter_table("retained_aggregate", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_retained_aggregate_unit_id"), ["unit_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("retained_aggregate", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_retained_aggregate_unit_id"))
    op.drop_table("retained_aggregate")
