"""zalo: OA token store, OA webhook inbox, media links, /link codes

Revision ID: 0003
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bot.db.models

revision: str = "0003"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "zalo_oa_tokens",
        sa.Column("app_id", sa.String(length=32), nullable=False),
        sa.Column("access_token", sa.Text(), nullable=False),
        sa.Column("refresh_token", sa.Text(), nullable=False),
        sa.Column("access_expires_at", bot.db.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("refreshed_at", bot.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("lease_owner", sa.String(length=32), nullable=True),
        sa.Column("lease_until", bot.db.models.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("app_id", name=op.f("pk_zalo_oa_tokens")),
    )
    op.create_table(
        "zalo_oa_inbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("dedup_key", sa.String(length=128), nullable=False),
        sa.Column("event_name", sa.String(length=64), nullable=False),
        sa.Column("raw", sa.Text(), nullable=True),
        sa.Column("received_at", bot.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("processed_at", bot.db.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_zalo_oa_inbox")),
        sa.UniqueConstraint("dedup_key", name=op.f("uq_zalo_oa_inbox_dedup_key")),
    )
    with op.batch_alter_table("zalo_oa_inbox", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_zalo_oa_inbox_processed_at"), ["processed_at"], unique=False
        )

    op.create_table(
        "media_links",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("path", sa.String(length=512), nullable=False),
        sa.Column("created_at", bot.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", bot.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_media_links")),
        sa.UniqueConstraint("path", name=op.f("uq_media_links_path")),
    )
    with op.batch_alter_table("media_links", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_media_links_expires_at"), ["expires_at"], unique=False
        )

    op.create_table(
        "link_codes",
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("identity_id", sa.Integer(), nullable=False),
        sa.Column("created_at", bot.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", bot.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["identity_id"],
            ["identities.id"],
            name=op.f("fk_link_codes_identity_id_identities"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_link_codes")),
    )
    with op.batch_alter_table("link_codes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_link_codes_identity_id"), ["identity_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("link_codes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_link_codes_identity_id"))
    op.drop_table("link_codes")
    with op.batch_alter_table("media_links", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_media_links_expires_at"))
    op.drop_table("media_links")
    with op.batch_alter_table("zalo_oa_inbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_zalo_oa_inbox_processed_at"))
    op.drop_table("zalo_oa_inbox")
    op.drop_table("zalo_oa_tokens")
