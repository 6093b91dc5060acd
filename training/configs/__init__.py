"""Training configurations (YAML), read with training.config.load."""
