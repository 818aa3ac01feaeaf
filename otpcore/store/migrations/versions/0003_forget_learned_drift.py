"""Forget the clock offsets that logins taught earlier releases.

Earlier releases re-centred a token's window on every accepted step and stored the offset; a
token left at -2 would go on accepting codes two steps old, against SPEC §3's window around
now, as logins no longer change it. Every used token's offset was learned (each login wrote
it over whatever its import declared), so those go back to 0; a token never used keeps the
offset its PSKC file declared.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 11:40:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("UPDATE tokens SET drift = 0 WHERE last_step >= 0 AND drift <> 0")


def downgrade() -> None:
    pass  # the learned offsets are gone; 0 is what the earlier release would learn again
