"""The HTTP API (FastAPI): chat with approvals, reads that mirror the CLI, Slack, health."""
