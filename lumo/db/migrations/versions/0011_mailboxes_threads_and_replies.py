"""mailboxes, mail threads and messages read back, outbox sent_via, invoice customer_replied_at

Revision ID: 0011
Revises: 0009
Create Date: 2026-12-03 17:10:00.000000
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('invoices') as batch_op:
        batch_op.add_column(sa.Column('customer_replied_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('outbox') as batch_op:
        batch_op.add_column(sa.Column('sent_via', sa.String(length=16), nullable=True))
    op.create_table(
        'mailboxes',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('user_id', sa.String(length=64), nullable=False),
        sa.Column('provider', sa.String(length=16), nullable=False),
        sa.Column('address', sa.String(length=320), nullable=False),
        sa.Column('refresh_token', sa.Text(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('cursor', sa.Text(), nullable=True),
        sa.Column('connected_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('synced_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('user_id'),
    )
    op.create_table(
        'mail_threads',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('mailbox_id', sa.Integer(), nullable=False),
        sa.Column('invoice_id', sa.String(length=64), nullable=False),
        sa.Column('provider_thread_id', sa.String(length=250), nullable=True),
        sa.Column('subject', sa.String(length=500), nullable=False),
        sa.Column('message_ids', sa.Text(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['mailbox_id'], ['mailboxes.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['invoice_id'], ['invoices.id'], ),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('mailbox_id', 'invoice_id', 'provider_thread_id', name='uq_mail_threads_mailbox_invoice_thread'),
    )
    op.create_index('ix_mail_threads_invoice_id', 'mail_threads', ['invoice_id'])
    op.create_index('ix_mail_threads_provider_thread_id', 'mail_threads', ['provider_thread_id'])
    op.create_table(
        'mail_messages',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('mailbox_id', sa.Integer(), nullable=False),
        sa.Column('provider_message_id', sa.String(length=250), nullable=False),
        sa.Column('provider_thread_id', sa.String(length=250), nullable=False),
        sa.Column('from_address', sa.String(length=320), nullable=False),
        sa.Column('subject', sa.String(length=500), nullable=False),
        sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('meaning', sa.String(length=16), nullable=False),
        sa.Column('invoice_numbers', sa.Text(), nullable=False),
        sa.Column('excerpt', sa.Text(), nullable=False),
        sa.Column('proposals', sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(['mailbox_id'], ['mailboxes.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('mailbox_id', 'provider_message_id', name='uq_mail_messages_mailbox_message'),
    )


def downgrade() -> None:
    op.drop_table('mail_messages')
    op.drop_index('ix_mail_threads_provider_thread_id', table_name='mail_threads')
    op.drop_index('ix_mail_threads_invoice_id', table_name='mail_threads')
    op.drop_table('mail_threads')
    op.drop_table('mailboxes')
    with op.batch_alter_table('outbox') as batch_op:
        batch_op.drop_column('sent_via')
    with op.batch_alter_table('invoices') as batch_op:
        batch_op.drop_column('customer_replied_at')
