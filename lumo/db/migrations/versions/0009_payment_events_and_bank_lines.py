"""payment events, bank lines, invoice external ids, payment and activity sources

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 14:40:00.000000
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('invoices') as batch_op:
        batch_op.add_column(sa.Column('external_id', sa.String(length=100), nullable=True))
        batch_op.create_unique_constraint('uq_invoices_external_id', ['external_id'])
    with op.batch_alter_table('payments') as batch_op:
        batch_op.add_column(sa.Column('source', sa.String(length=120), nullable=True))
        batch_op.create_index('ix_payments_source', ['source'])
    with op.batch_alter_table('activities') as batch_op:
        batch_op.add_column(sa.Column('source', sa.String(length=120), nullable=True))
    op.create_table(
        'payment_events',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('provider', sa.String(length=32), nullable=False),
        sa.Column('event_id', sa.String(length=100), nullable=False),
        sa.Column('type', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('object_id', sa.String(length=100), nullable=False),
        sa.Column('invoice_id', sa.String(length=64), nullable=True),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('detail', sa.Text(), nullable=False),
        sa.Column('payload', sa.Text(), nullable=False),
        sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['invoice_id'], ['invoices.id'], ),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('provider', 'event_id', name='uq_payment_events_provider_event'),
    )
    op.create_index('ix_payment_events_invoice_id', 'payment_events', ['invoice_id'])
    op.create_index('ix_payment_events_status', 'payment_events', ['status'])
    op.create_table(
        'bank_lines',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('row_hash', sa.String(length=64), nullable=False),
        sa.Column('source_file', sa.String(length=300), nullable=False),
        sa.Column('booked_on', sa.Date(), nullable=False),
        sa.Column('amount', sa.Numeric(precision=18, scale=2), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('reference', sa.Text(), nullable=False),
        sa.Column('counterparty', sa.String(length=300), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('invoice_ids', sa.Text(), nullable=False),
        sa.Column('account_id', sa.String(length=64), nullable=True),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('imported_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('imported_by', sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ),
        sa.ForeignKeyConstraint(['imported_by'], ['users.id'], ),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('row_hash'),
    )
    op.create_index('ix_bank_lines_status', 'bank_lines', ['status'])
    op.create_index('ix_bank_lines_account_id', 'bank_lines', ['account_id'])


def downgrade() -> None:
    op.drop_index('ix_bank_lines_account_id', table_name='bank_lines')
    op.drop_index('ix_bank_lines_status', table_name='bank_lines')
    op.drop_table('bank_lines')
    op.drop_index('ix_payment_events_status', table_name='payment_events')
    op.drop_index('ix_payment_events_invoice_id', table_name='payment_events')
    op.drop_table('payment_events')
    with op.batch_alter_table('activities') as batch_op:
        batch_op.drop_column('source')
    with op.batch_alter_table('payments') as batch_op:
        batch_op.drop_index('ix_payments_source')
        batch_op.drop_column('source')
    with op.batch_alter_table('invoices') as batch_op:
        batch_op.drop_constraint('uq_invoices_external_id', type_='unique')
        batch_op.drop_column('external_id')
