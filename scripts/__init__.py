"""Maintenance scripts (run from the repository root, e.g. ``python -m scripts.shapes_clip``)."""
