"""The transformer and its configuration: one readable model, families as configuration."""
