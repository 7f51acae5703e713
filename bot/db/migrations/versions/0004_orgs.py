"""organisation units, officers, invites, the audit log; membership confirmation

Revision ID: 0004
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bot.db.models

revision: str = "0004"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DT = bot.db.models.UTCDateTime(timezone=True)

_PG_APPEND_ONLY = (
    """CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'audit_log is append-only';
    END
    $$""",
    """CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()""",
)


def upgrade() -> None:
    op.create_table(
        "org_units",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=48), nullable=False),
        sa.Column("join_code", sa.String(length=48), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("locality_code", sa.Integer(), nullable=False),
        sa.Column("province_code", sa.Integer(), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("path", sa.String(length=255), nullable=False),
        sa.Column("created_at", UTC_DT, nullable=False),
        sa.ForeignKeyConstraint(["parent_id"], ["org_units.id"],
                                name=op.f("fk_org_units_parent_id_org_units"),
                                ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_org_units")),
        sa.UniqueConstraint("code", name=op.f("uq_org_units_code")),
        sa.UniqueConstraint("join_code", name=op.f("uq_org_units_join_code")),
    )
    with op.batch_alter_table("org_units") as batch_op:
        batch_op.create_index("ix_org_units_type_locality_code", ["type", "locality_code"])
        batch_op.create_index(batch_op.f("ix_org_units_locality_code"), ["locality_code"])
        batch_op.create_index(batch_op.f("ix_org_units_province_code"), ["province_code"])
        batch_op.create_index(batch_op.f("ix_org_units_parent_id"), ["parent_id"])

    op.create_table(
        "unit_years",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("member_count", sa.Integer(), nullable=True),
        sa.Column("target", sa.Integer(), nullable=True),
        sa.Column("updated_by", sa.String(length=96), nullable=False),
        sa.Column("updated_at", UTC_DT, nullable=False),
        sa.ForeignKeyConstraint(["unit_id"], ["org_units.id"],
                                name=op.f("fk_unit_years_unit_id_org_units"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_unit_years")),
        sa.UniqueConstraint("unit_id", "year", name=op.f("uq_unit_years_unit_id")),
    )

    op.create_table(
        "officers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("external_id", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=24), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=True),
        sa.Column("locality_code", sa.Integer(), nullable=True),
        sa.Column("granted_by", sa.String(length=96), nullable=False),
        sa.Column("granted_at", UTC_DT, nullable=False),
        sa.Column("revoked_at", UTC_DT, nullable=True),
        sa.Column("revoked_by", sa.String(length=96), nullable=True),
        sa.ForeignKeyConstraint(["unit_id"], ["org_units.id"],
                                name=op.f("fk_officers_unit_id_org_units"), ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_officers")),
    )
    with op.batch_alter_table("officers") as batch_op:
        batch_op.create_index("ix_officers_channel_external_id", ["channel", "external_id"])
        batch_op.create_index(batch_op.f("ix_officers_unit_id"), ["unit_id"])

    op.create_table(
        "officer_invites",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=24), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=True),
        sa.Column("locality_code", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.String(length=96), nullable=False),
        sa.Column("created_by_officer_id", sa.Integer(), nullable=True),
        sa.Column("created_at", UTC_DT, nullable=False),
        sa.Column("expires_at", UTC_DT, nullable=False),
        sa.Column("used_by", sa.String(length=96), nullable=True),
        sa.Column("used_at", UTC_DT, nullable=True),
        sa.ForeignKeyConstraint(["unit_id"], ["org_units.id"],
                                name=op.f("fk_officer_invites_unit_id_org_units"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["created_by_officer_id"], ["officers.id"],
                                name=op.f("fk_officer_invites_created_by_officer_id_officers"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_officer_invites")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_officer_invites_token_hash")),
    )

    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("at", UTC_DT, nullable=False),
        sa.Column("actor", sa.String(length=96), nullable=False),
        sa.Column("action", sa.String(length=48), nullable=False),
        sa.Column("target", sa.String(length=128), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    with op.batch_alter_table("audit_log") as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_log_at"), ["at"])

    with op.batch_alter_table("memberships") as batch_op:
        batch_op.add_column(sa.Column("confirmed_at", UTC_DT, nullable=True))
        batch_op.add_column(sa.Column("confirmed_by", sa.String(length=96), nullable=True))
        batch_op.create_index(batch_op.f("ix_memberships_unit_code"), ["unit_code"])

    # The audit log is append-only, also against mistakes outside the app (ad-hoc SQL).
    if op.get_bind().dialect.name == "postgresql":
        for statement in _PG_APPEND_ONLY:
            op.execute(statement)
    else:
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_log_no_{verb.lower()} BEFORE {verb} ON audit_log "
                "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log")
        op.execute("DROP FUNCTION IF EXISTS audit_log_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_delete")
    with op.batch_alter_table("memberships") as batch_op:
        batch_op.drop_index(batch_op.f("ix_memberships_unit_code"))
        batch_op.drop_column("confirmed_by")
        batch_op.drop_column("confirmed_at")
    op.drop_table("audit_log")
    op.drop_table("officer_invites")
    op.drop_table("officers")
    op.drop_table("unit_years")
    op.drop_table("org_units")
