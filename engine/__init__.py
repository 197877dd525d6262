"""Shoebox engine: everything that works without a screen.

This package never imports Qt; ``tests/unit/test_architecture.py`` enforces it.
"""

__version__ = "0.1.0"
