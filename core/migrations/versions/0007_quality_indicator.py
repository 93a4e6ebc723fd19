"""the municipality's own quality indicators: the indicator dictionary and values per unit x term

Revision ID: 0007_i19_quality_indicator
Revises: 0006_i19_unit_measure
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_i19_quality_indicator"
down_revision = "0006_i19_unit_measure"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "quality_indicator",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=40), nullable=False),
        sa.Column("label_sv", sa.String(length=200), nullable=False),
        sa.Column("label_en", sa.String(length=200), nullable=False),
        sa.Column("unit", sa.String(length=80), nullable=False),
        sa.Column("direction", sa.String(length=16), nullable=False),
        sa.Column("reference", sa.Text(), nullable=True),
        sa.Column("low", sa.Float(), nullable=True),
        sa.Column("high", sa.Float(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
    )
    with op.batch_alter_table("unit_context") as batch:
        batch.add_column(sa.Column("indicators", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("unit_context") as batch:
        batch.drop_column("indicators")
    op.drop_table("quality_indicator")
