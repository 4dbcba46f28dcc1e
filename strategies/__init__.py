"""Example strategies to copy and subclass (importable as `strategies.<module>`)."""
