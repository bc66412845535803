"""digest_runs.claimed_at: when a digest started to leave (a 'sending' row older than a send takes was cut off)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04 19:20:00.000000
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('digest_runs') as batch_op:
        batch_op.add_column(sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('digest_runs') as batch_op:
        batch_op.drop_column('claimed_at')
