"""Demo data: a client of crm that writes a realistic book in the domain's words."""
