"""the job queue's tables (procrastinate), on PostgreSQL only

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 17:00:00.000000

Applied here rather than by `procrastinate schema --apply` after Alembic, so that `lumo db upgrade` stays the
one command that sets a database up, in one transaction, with one version history. SQLite has no job tables:
its jobs run in the serving process (lumo.jobs, in memory). A later procrastinate release that changes its
schema ships SQL migrations (procrastinate/sql/migrations); they go in a Lumo migration after this one.
"""
from __future__ import annotations

from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

TABLES = ('procrastinate_events', 'procrastinate_periodic_defers', 'procrastinate_jobs', 'procrastinate_workers')
TYPES = ('procrastinate_job_to_defer_v1', 'procrastinate_job_event_type', 'procrastinate_job_status')


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != 'postgresql':
        return
    from procrastinate.schema import SchemaManager

    # On the DB-API cursor without parameters: the schema's PL/pgSQL has `%` and `::`, which are not placeholders.
    dbapi = bind.connection.dbapi_connection
    assert dbapi is not None, 'an open connection'
    cursor = dbapi.cursor()
    try:
        cursor.execute(SchemaManager.get_schema())
    finally:
        cursor.close()


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != 'postgresql':
        return
    for table in TABLES:
        bind.exec_driver_sql(f'DROP TABLE IF EXISTS {table} CASCADE')
    functions: list[str] = bind.exec_driver_sql(  # type: ignore[assignment]
        "SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
        "WHERE n.nspname = current_schema() AND p.proname LIKE 'procrastinate%%'"
    ).scalars().all()
    for function in functions:
        bind.exec_driver_sql(f'DROP FUNCTION IF EXISTS {function} CASCADE')
    for type_ in TYPES:
        bind.exec_driver_sql(f'DROP TYPE IF EXISTS {type_} CASCADE')
