"""Domain operations the UI calls (plain Python, no Qt): entries, Today, sync status, reminders."""
