"""campaigns, the delivery outbox, offline activities and attendance; campaign opt-out

Revision ID: 0006
Revises: 0007 (after the merge of the Zalo, organisations and privacy branches)
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bot.db.models

revision: str = "0006"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DT = bot.db.models.UTCDateTime(timezone=True)
BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
PENDING = sa.text("status = 'pending'")


def upgrade() -> None:
    with op.batch_alter_table("persons") as batch_op:
        batch_op.add_column(sa.Column("campaigns_opt_out", sa.Boolean(), nullable=False,
                                      server_default=sa.text("'0'")))  # fmt: skip

    op.create_table(
        "campaigns",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("unit_id", sa.Integer(), nullable=True),
        sa.Column("locality_code", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.String(length=96), nullable=False),
        sa.Column("created_at", UTC_DT, nullable=False),
        sa.Column("audience", sa.JSON(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("button_kind", sa.String(length=8), nullable=True),
        sa.Column("button_target", sa.String(length=32), nullable=True),
        sa.Column("schedule", sa.String(length=8), nullable=False),
        sa.Column("send_at", UTC_DT, nullable=True),
        sa.Column("weekly_days", sa.String(length=16), nullable=True),
        sa.Column("weekly_time", sa.String(length=5), nullable=True),
        sa.Column("next_run_at", UTC_DT, nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("audience_size", sa.Integer(), nullable=True),
        sa.Column("started_at", UTC_DT, nullable=True),
        sa.Column("finished_at", UTC_DT, nullable=True),
        sa.Column("cancelled_at", UTC_DT, nullable=True),
        sa.Column("cancelled_by", sa.String(length=96), nullable=True),
        sa.Column("sent", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("blocked", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["parent_id"], ["campaigns.id"],
                                name=op.f("fk_campaigns_parent_id_campaigns"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["unit_id"], ["org_units.id"],
                                name=op.f("fk_campaigns_unit_id_org_units"), ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaigns")),
    )
    with op.batch_alter_table("campaigns") as batch_op:
        batch_op.create_index("ix_campaigns_status_next_run_at", ["status", "next_run_at"])
        batch_op.create_index(batch_op.f("ix_campaigns_parent_id"), ["parent_id"])
        batch_op.create_index(batch_op.f("ix_campaigns_unit_id"), ["unit_id"])

    op.create_table(
        "deliveries",
        sa.Column("id", BIGINT, nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("identity_id", sa.Integer(), nullable=True),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTC_DT, nullable=False),
        sa.Column("claimed_by", sa.String(length=40), nullable=True),
        sa.Column("claimed_until", UTC_DT, nullable=True),
        sa.Column("sent_at", UTC_DT, nullable=True),
        sa.Column("delivered_at", UTC_DT, nullable=True),
        sa.Column("message_id", sa.String(length=64), nullable=True),
        sa.Column("engaged_at", UTC_DT, nullable=True),
        sa.ForeignKeyConstraint(["campaign_id"], ["campaigns.id"],
                                name=op.f("fk_deliveries_campaign_id_campaigns"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["identity_id"], ["identities.id"],
                                name=op.f("fk_deliveries_identity_id_identities"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deliveries")),
        sa.UniqueConstraint("campaign_id", "identity_id", name=op.f("uq_deliveries_campaign_id")),
    )
    op.create_index("ix_deliveries_pending", "deliveries", ["channel", "id"],
                    sqlite_where=PENDING, postgresql_where=PENDING)  # fmt: skip
    op.create_index("ix_deliveries_campaign_id_status", "deliveries", ["campaign_id", "status"])
    op.create_index("ix_deliveries_identity_id_sent_at", "deliveries",
                    ["identity_id", "sent_at"])  # fmt: skip

    op.create_table(
        "activities",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("held_on", UTC_DT, nullable=False),
        sa.Column("place", sa.String(length=200), nullable=False),
        sa.Column("planned", sa.Integer(), nullable=True),
        sa.Column("lesson_id", sa.String(length=32), nullable=True),
        sa.Column("head_count", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=96), nullable=False),
        sa.Column("created_at", UTC_DT, nullable=False),
        sa.ForeignKeyConstraint(["unit_id"], ["org_units.id"],
                                name=op.f("fk_activities_unit_id_org_units"), ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_activities")),
        sa.UniqueConstraint("code", name=op.f("uq_activities_code")),
    )
    op.create_index(op.f("ix_activities_unit_id"), "activities", ["unit_id"])

    op.create_table(
        "attendances",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("activity_id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("at", UTC_DT, nullable=False),
        sa.ForeignKeyConstraint(["activity_id"], ["activities.id"],
                                name=op.f("fk_attendances_activity_id_activities"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["person_id"], ["persons.id"],
                                name=op.f("fk_attendances_person_id_persons"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attendances")),
        sa.UniqueConstraint("activity_id", "person_id", name=op.f("uq_attendances_activity_id")),
    )
    op.create_index(op.f("ix_attendances_person_id"), "attendances", ["person_id"])


def downgrade() -> None:
    op.drop_table("attendances")
    op.drop_table("activities")
    op.drop_table("deliveries")
    op.drop_table("campaigns")
    with op.batch_alter_table("persons") as batch_op:
        batch_op.drop_column("campaigns_opt_out")
