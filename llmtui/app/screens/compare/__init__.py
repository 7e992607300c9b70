"""Compare: two settings, two models or two branches side by side (screen.py; view.py its cells;
model_picker.py B's model; second_model.py where B's model is kept)."""
