"""Scriptbox: a self-hosted console for operational scripts."""
