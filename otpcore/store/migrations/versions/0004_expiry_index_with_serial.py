"""Index the tokens' expiry together with their serial.

Expiry listings read a slice at a time in (expiry, serial) order, each slice starting after
the last row of the one before. On PostgreSQL an index on the expiry alone holds no serial:
every slice of a lot of tokens that expire on one day read the whole lot again to find where
to start, and a listing of a million such tokens took a time that grew with the square of
their number. SQLite's index already ended in the serial (the table is keyed on it); it is
made the same way on both, so that a database made new and one upgraded hold one schema.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 05:00:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_tokens_expires_serial", "tokens", ["expires", "serial"], unique=False)
    op.drop_index("ix_tokens_expires", table_name="tokens")


def downgrade() -> None:
    op.create_index("ix_tokens_expires", "tokens", ["expires"], unique=False)
    op.drop_index("ix_tokens_expires_serial", table_name="tokens")
