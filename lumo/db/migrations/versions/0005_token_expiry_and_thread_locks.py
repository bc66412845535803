"""token expiry and thread locks

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 18:30:00
"""
from __future__ import annotations

import sqlalchemy as sa

import lumo.db.models
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('api_tokens', sa.Column('expires_at', lumo.db.models.UTCDateTime(timezone=True), nullable=True))
    op.create_table('thread_locks',
    sa.Column('thread_key', sa.String(length=300), nullable=False),
    sa.Column('holder', sa.String(length=64), nullable=False),
    sa.Column('acquired_at', lumo.db.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('thread_key')
    )


def downgrade() -> None:
    op.drop_table('thread_locks')
    with op.batch_alter_table('api_tokens') as batch:
        batch.drop_column('expires_at')
