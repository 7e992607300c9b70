"""Branches: every generation and fork of the Generate pane's prompt, as a list to reopen, rename, delete."""
