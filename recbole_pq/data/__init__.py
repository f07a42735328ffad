"""Data sets: where they live, how raw files are prepared, a user's own files, training rows and batches."""
