"""The reps' own mailboxes, Gmail and Outlook: connecting one (OAuth), sending approved emails from it in the
invoice's thread, and reading the customers' replies back.

Layer: beside `tools` and `lumo.llm` (ARCHITECTURE.md section 1): it builds on `lumo.crm` and `lumo.db`, and
`lumo.digest` (the outbox sender), `lumo.api` and `lumo.cli` use it. The provider HTTP clients live here, never
in `lumo.crm`, which decides what a reply means and what it changes (`lumo.crm.replies`).
"""
