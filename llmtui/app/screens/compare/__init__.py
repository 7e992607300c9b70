"""Compare: two settings of the model side by side on the Generate pane's prompt (screen.py; view.py its cells)."""
