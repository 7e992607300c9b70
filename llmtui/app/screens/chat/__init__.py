"""The chat's turns: edit any user message and re-run the chat from there (screen.py; view.py its rows)."""
