"""Background work on a job queue (procrastinate): digests, approved emails, Slack answers, periodic sweeps.

On PostgreSQL `lumo serve` only enqueues and any number of `lumo worker` processes run the jobs; on SQLite (or
with LUMO_JOBS=in-process) the same job functions run inside `lumo serve`, on an in-memory queue. Exactly-once
lives in the rows the jobs touch (DigestRun, the outbox claim, SlackEvent, AgentAction), not in the queue: a job
that runs twice (a stalled job retried, two hosts) does nothing the second time.
"""
