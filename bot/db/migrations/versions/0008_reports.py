"""report rollups (incrementally refreshed counters), frozen reports, dashboard login

Revision ID: 0008
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bot.db.models

revision: str = "0008"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DT = bot.db.models.UTCDateTime(timezone=True)

# Any change to a past event (identity merges re-point person_key) marks the person keys
# involved, so the next rollup refresh recomputes them.
_PG_TRIGGER = (
    """CREATE FUNCTION participation_events_mark_dirty() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO rollup_dirty (person_key) VALUES (OLD.person_key) ON CONFLICT DO NOTHING;
        IF TG_OP = 'UPDATE' THEN
            INSERT INTO rollup_dirty (person_key) VALUES (NEW.person_key)
            ON CONFLICT DO NOTHING;
            RETURN NEW;
        END IF;
        RETURN OLD;
    END
    $$""",
    """CREATE TRIGGER participation_events_mark_dirty AFTER UPDATE OR DELETE
    ON participation_events FOR EACH ROW EXECUTE FUNCTION participation_events_mark_dirty()""",
)
_SQLITE_TRIGGERS = (
    """CREATE TRIGGER participation_events_dirty_update AFTER UPDATE ON participation_events
    BEGIN
        INSERT OR IGNORE INTO rollup_dirty (person_key) VALUES (OLD.person_key);
        INSERT OR IGNORE INTO rollup_dirty (person_key) VALUES (NEW.person_key);
    END""",
    """CREATE TRIGGER participation_events_dirty_delete AFTER DELETE ON participation_events
    BEGIN
        INSERT OR IGNORE INTO rollup_dirty (person_key) VALUES (OLD.person_key);
    END""",
)


def _mask(name: str) -> sa.Column:
    return sa.Column(name, sa.BigInteger(), nullable=False)


def upgrade() -> None:
    op.create_table(
        "rollup_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("last_event_id", sa.BigInteger(), nullable=False),
        sa.Column("tree", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("refreshed_at", UTC_DT, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollup_state")),
    )
    op.create_table(
        "rollup_dirty",
        sa.Column("person_key", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("person_key", name=op.f("pk_rollup_dirty")),
    )
    op.create_table(
        "rollup_unit_groups",
        sa.Column("code", sa.String(length=48), nullable=False),
        sa.Column("grp", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("code", "grp", name=op.f("pk_rollup_unit_groups")),
    )
    op.create_table(
        "rollup_place_groups",
        sa.Column("code", sa.Integer(), nullable=False),
        sa.Column("grp", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("code", "grp", name=op.f("pk_rollup_place_groups")),
    )
    for table in ("rollup_unit_groups", "rollup_place_groups"):
        with op.batch_alter_table(table) as batch_op:
            batch_op.create_index(batch_op.f(f"ix_{table}_grp"), ["grp"], unique=False)
    op.create_table(
        "rollup_persons",
        sa.Column("person_key", sa.String(length=32), nullable=False),
        sa.Column("contrib", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("person_key", name=op.f("pk_rollup_persons")),
    )
    op.create_table(
        "rollup_people",
        sa.Column("grp", sa.String(length=64), nullable=False),
        _mask("act"), _mask("rch"), _mask("eng"), _mask("reg"), _mask("mem"), _mask("trn"),
        sa.Column("ry", sa.Integer(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("grp", "act", "rch", "eng", "reg", "mem", "trn", "ry",
                                name=op.f("pk_rollup_people")),
        sqlite_with_rowid=False,
    )  # fmt: skip
    op.create_table(
        "rollup_dims",
        sa.Column("grp", sa.String(length=64), nullable=False),
        _mask("act"), _mask("reg"), _mask("mem"), _mask("trn"),
        sa.Column("gender", sa.String(length=16), nullable=False),
        sa.Column("age_band", sa.String(length=16), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("grp", "act", "reg", "mem", "trn", "gender", "age_band",
                                name=op.f("pk_rollup_dims")),
        sqlite_with_rowid=False,
    )  # fmt: skip
    op.create_table(
        "rollup_pairs",
        sa.Column("grp", sa.String(length=64), nullable=False),
        _mask("cmp"), _mask("fin"), _mask("pas"),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("grp", "cmp", "fin", "pas", name=op.f("pk_rollup_pairs")),
        sqlite_with_rowid=False,
    )  # fmt: skip
    op.create_table(
        "rollup_communes",
        sa.Column("grp", sa.String(length=64), nullable=False),
        sa.Column("commune_code", sa.Integer(), nullable=False),
        _mask("act"),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("grp", "commune_code", "act", name=op.f("pk_rollup_communes")),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "rollup_months",
        sa.Column("grp", sa.String(length=64), nullable=False),
        sa.Column("month", sa.Integer(), nullable=False),
        sa.Column("measure", sa.String(length=16), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("grp", "month", "measure", name=op.f("pk_rollup_months")),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "rollup_campaigns",
        sa.Column("grp", sa.String(length=64), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("years", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("grp", "campaign_id", name=op.f("pk_rollup_campaigns")),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "frozen_reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(length=32), nullable=False),
        sa.Column("scope", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("criteria_version", sa.String(length=64), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("checksum", sa.String(length=64), nullable=False),
        sa.Column("frozen_at", UTC_DT, nullable=False),
        sa.Column("frozen_by", sa.String(length=96), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_frozen_reports")),
    )
    op.create_table(
        "dashboard_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("external_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTC_DT, nullable=False),
        sa.Column("expires_at", UTC_DT, nullable=False),
        sa.Column("used_at", UTC_DT, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dashboard_links")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_dashboard_links_token_hash")),
    )
    op.create_table(
        "dashboard_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("external_id", sa.String(length=64), nullable=False),
        sa.Column("csrf", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTC_DT, nullable=False),
        sa.Column("expires_at", UTC_DT, nullable=False),
        sa.Column("revoked_at", UTC_DT, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dashboard_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_dashboard_sessions_token_hash")),
    )
    with op.batch_alter_table("dashboard_sessions") as batch_op:
        batch_op.create_index(batch_op.f("ix_dashboard_sessions_expires_at"), ["expires_at"],
                              unique=False)  # fmt: skip
    if op.get_bind().dialect.name == "postgresql":
        for statement in _PG_TRIGGER:
            op.execute(statement)
    else:
        for statement in _SQLITE_TRIGGERS:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS participation_events_mark_dirty "
                   "ON participation_events")  # fmt: skip
        op.execute("DROP FUNCTION IF EXISTS participation_events_mark_dirty()")
    else:
        op.execute("DROP TRIGGER IF EXISTS participation_events_dirty_update")
        op.execute("DROP TRIGGER IF EXISTS participation_events_dirty_delete")
    with op.batch_alter_table("dashboard_sessions") as batch_op:
        batch_op.drop_index(batch_op.f("ix_dashboard_sessions_expires_at"))
    for table in ("rollup_unit_groups", "rollup_place_groups"):
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_index(batch_op.f(f"ix_{table}_grp"))
    for table in ("dashboard_sessions", "dashboard_links", "frozen_reports", "rollup_campaigns",
                  "rollup_months", "rollup_communes", "rollup_pairs", "rollup_dims",
                  "rollup_people",
                  "rollup_persons", "rollup_unit_groups", "rollup_place_groups",
                  "rollup_dirty", "rollup_state"):  # fmt: skip
        op.drop_table(table)
