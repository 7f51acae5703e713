"""certificates and opt-in reminders

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bot.db.models

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "certificates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=True),
        sa.Column("holder_name", sa.String(length=128), nullable=False),
        sa.Column("module_id", sa.String(length=32), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("issued_at", bot.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", bot.db.models.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["person_id"], ["persons.id"],
                                name=op.f("fk_certificates_person_id_persons"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_certificates")),
        sa.UniqueConstraint("code", name=op.f("uq_certificates_code")),
        sa.UniqueConstraint("person_id", "module_id", name=op.f("uq_certificates_person_id")),
    )
    with op.batch_alter_table("certificates") as batch_op:
        batch_op.create_index(batch_op.f("ix_certificates_person_id"), ["person_id"])
    with op.batch_alter_table("persons") as batch_op:
        batch_op.add_column(sa.Column("reminder_hour", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("last_reminded_at",
                                      bot.db.models.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("persons") as batch_op:
        batch_op.drop_column("last_reminded_at")
        batch_op.drop_column("reminder_hour")
    with op.batch_alter_table("certificates") as batch_op:
        batch_op.drop_index(batch_op.f("ix_certificates_person_id"))
    op.drop_table("certificates")
