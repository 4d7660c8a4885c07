"""Evaluation: pose metrics, plausibility metrics, per-action tables."""
