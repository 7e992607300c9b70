"""Headless analyses the panes, the CLI, the exports and the demos share: each returns plain data."""
