"""Slack: the Events API, the `/lumo` slash command and the approval buttons (DESIGN section 4)."""
