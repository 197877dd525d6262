"""Shoebox desktop application (PySide6)."""
