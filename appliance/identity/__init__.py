"""Identity core: users, groups, passwords and API keys (service layer; the API sits above)."""
