"""Reusable widgets: metric panels with sparklines."""
