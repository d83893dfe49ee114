"""Shared building blocks of the MLOps event handlers."""
