"""Training: the real/bogus CNN, its data and its jobs."""
