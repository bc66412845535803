"""Lumo, the assistant of Lumenbase CRM."""

__version__ = "0.1.0"
