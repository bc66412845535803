"""invoice status check

Revision ID: 0007
Revises: 0005
Create Date: 2026-12-02 18:40:00.000000

The statuses are written out here, not imported: a migration records the schema as it was on the day
it ran. tests/test_migrations.py checks that each of lumo.crm.lifecycle.STATUSES is accepted.
"""
from __future__ import annotations

from alembic import op

revision = '0007'
down_revision = '0005'
branch_labels = None
depends_on = None

STATUSES = ("draft", "sent", "viewed", "partially_paid", "paid", "overdue", "disputed", "void", "written_off")
CHECK = "status IN (" + ", ".join(f"'{s}'" for s in STATUSES) + ")"


def upgrade() -> None:
    # Batch mode: SQLite cannot add a constraint to a table, so it copies the table (PostgreSQL alters it).
    with op.batch_alter_table('invoices') as batch_op:
        batch_op.create_check_constraint('ck_invoices_status', CHECK)


def downgrade() -> None:
    with op.batch_alter_table('invoices') as batch_op:
        batch_op.drop_constraint('ck_invoices_status', type_='check')
