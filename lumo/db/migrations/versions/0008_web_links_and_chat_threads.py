"""web sign-in links and chat thread list

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 14:00:00
"""
from __future__ import annotations

import sqlalchemy as sa

import lumo.db.models
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('web_links',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('user_id', sa.String(length=64), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', lumo.db.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', lumo.db.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('used_at', lumo.db.models.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_hash')
    )
    op.create_index('ix_web_links_user_id', 'web_links', ['user_id'], unique=False)
    op.create_table('chat_threads',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('user_id', sa.String(length=64), nullable=False),
    sa.Column('thread_id', sa.String(length=64), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('created_at', lumo.db.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', lumo.db.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('user_id', 'thread_id', name='uq_chat_threads_user_thread')
    )
    op.create_index('ix_chat_threads_user_updated', 'chat_threads', ['user_id', 'updated_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_chat_threads_user_updated', table_name='chat_threads')
    op.drop_table('chat_threads')
    op.drop_index('ix_web_links_user_id', table_name='web_links')
    op.drop_table('web_links')
