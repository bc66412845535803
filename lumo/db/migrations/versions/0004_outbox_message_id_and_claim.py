"""outbox message id and claim time (uncertain sends)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 18:45:00
"""
from __future__ import annotations

import sqlalchemy as sa

import lumo.db.models
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('message_id', sa.String(length=250), nullable=True))
        batch_op.add_column(sa.Column('claimed_at', lumo.db.models.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_column('claimed_at')
        batch_op.drop_column('message_id')
