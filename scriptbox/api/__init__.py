"""Thin JSON routes. Business rules live in models, stores and the engine."""
