"""Slack: the Events API, the `/lumo` slash command and the approval buttons (ARCHITECTURE.md section 4)."""
