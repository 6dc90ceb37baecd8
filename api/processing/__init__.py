"""Image processing: pure operations, the worker function, and the process-pool engine."""
