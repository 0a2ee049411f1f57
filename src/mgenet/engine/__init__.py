"""Training and inference loops; they take configs and paths, never parse arguments."""
