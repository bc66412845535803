"""book_versions: a version per owner's book, changed by triggers on every write a book is read from

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 01:40:00.000000

Results worked out from a book (today's priorities, the names in it) are kept per process while its version
is unchanged (lumo.crm.book_cache). Triggers keep the versions, so no write path can forget to: every insert,
update and delete of invoices, tasks, contacts and invoice contacts sets a new version for the owner whose
book it is in. A change that can reach many books (an account's owner or name, a user, an exchange rate, the
workspace) sets the version of '*', which every key includes. A new version is random, not the old plus one:
a version written by a transaction that rolled back, or by an earlier database of the same name, is never
taken again, so a result cached under it is never served for another state.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

EVERY_BOOK = "SELECT '*' AS owner_id"
# Per table and operation: the owners whose books change, as SQL over the changed rows `r`.
OWNERS = {
    'invoices': "SELECT a.owner_id FROM {r} r JOIN accounts a ON a.id = r.account_id",
    'tasks': "SELECT r.owner_id FROM {r} r",
    'contacts': "SELECT a.owner_id FROM {r} r JOIN accounts a ON a.id = r.account_id",
    'invoice_contacts': (
        "SELECT a.owner_id FROM {r} r JOIN invoices i ON i.id = r.invoice_id JOIN accounts a ON a.id = i.account_id"
    ),
}
EVERY = ('users', 'fx_rates', 'workspace')  # any change here may change every book
OPS = {'INSERT': ('new',), 'UPDATE': ('old', 'new'), 'DELETE': ('old',)}


def _owners(table: str, op_name: str) -> str | None:
    """None: every book ('*')."""
    if table == 'accounts':
        return "SELECT r.owner_id FROM {r} r" if op_name == 'INSERT' else None  # a new account has no invoices yet
    if table in EVERY:
        return None
    return OWNERS[table]


def _tables() -> list[str]:
    return [*OWNERS, 'accounts', *EVERY]


def _pg_trigger(table: str, op_name: str) -> None:
    name = f"lumo_book_{table}_{op_name.lower()}"
    sides = OPS[op_name]
    owners = _owners(table, op_name)
    if owners is None:
        chosen = EVERY_BOOK
    else:
        chosen = " UNION ".join(owners.format(r=f"{side}_rows") for side in sides)
    op.execute(
        f"""
        CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO book_versions (owner_id, version)
            SELECT owner_id, (random() * 9e18)::bigint FROM (SELECT DISTINCT owner_id FROM ({chosen}) AS c) AS changed
            WHERE owner_id IS NOT NULL ORDER BY owner_id
            ON CONFLICT (owner_id) DO UPDATE SET version = (random() * 9e18)::bigint;
            RETURN NULL;
        END $$
        """
    )
    referencing = " ".join(f"{side.upper()} TABLE AS {side}_rows" for side in sides)
    if owners is None:
        referencing = ""  # no rows to read: '*' whatever changed
    else:
        referencing = f"REFERENCING {referencing}"
    op.execute(f"CREATE TRIGGER {name} AFTER {op_name} ON {table} {referencing} FOR EACH STATEMENT EXECUTE FUNCTION {name}()")


def _sqlite_trigger(table: str, op_name: str) -> None:
    name = f"lumo_book_{table}_{op_name.lower()}"
    owners = _owners(table, op_name)
    if owners is None:
        chosen = EVERY_BOOK
    else:  # a row trigger: the row is NEW / OLD, read as a one-row table
        chosen = " UNION ".join(
            owners.replace("{r} r", f"(SELECT {_columns(table, side)}) r") for side in OPS[op_name]
        )
    op.execute(
        f"""
        CREATE TRIGGER {name} AFTER {op_name} ON {table} BEGIN
            INSERT INTO book_versions (owner_id, version)
            SELECT owner_id, random() FROM ({chosen}) AS changed WHERE owner_id IS NOT NULL
            ON CONFLICT (owner_id) DO UPDATE SET version = random();
        END
        """
    )


def _columns(table: str, side: str) -> str:
    """The columns of NEW / OLD the owner queries read, as a SELECT list."""
    wanted = {'invoices': ['account_id'], 'tasks': ['owner_id'], 'contacts': ['account_id'],
              'invoice_contacts': ['invoice_id'], 'accounts': ['owner_id']}[table]
    return ", ".join(f"{side.upper()}.{c} AS {c}" for c in wanted)


def upgrade() -> None:
    op.create_table(
        'book_versions',
        sa.Column('owner_id', sa.String(length=64), nullable=False),
        sa.Column('version', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('owner_id'),
    )
    postgres = op.get_bind().dialect.name == 'postgresql'
    make = _pg_trigger if postgres else _sqlite_trigger
    for table in _tables():
        for op_name in OPS:
            make(table, op_name)
    for table in _tables() if postgres else ():  # TRUNCATE fires no row triggers (SQLite has none: DELETE fires them)
        op.execute(  # lumo_book_users_update sets '*', as any change to users does
            f"CREATE TRIGGER lumo_book_{table}_truncate AFTER TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION lumo_book_users_update()"
        )


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == 'postgresql'
    for table in _tables():
        if postgres:
            op.execute(f"DROP TRIGGER IF EXISTS lumo_book_{table}_truncate ON {table}")
    for table in _tables():
        for op_name in OPS:
            name = f"lumo_book_{table}_{op_name.lower()}"
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}" if postgres else f"DROP TRIGGER IF EXISTS {name}")
            if postgres:
                op.execute(f"DROP FUNCTION IF EXISTS {name}()")
    op.drop_table('book_versions')
