"""Hooks that put a trained generator into other training pipelines (coming next)."""
