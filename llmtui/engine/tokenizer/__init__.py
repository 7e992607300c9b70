"""Text to token ids and back, and tokens prepared for display."""
