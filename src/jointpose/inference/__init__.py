"""Inference and export: the Lifter API, streaming, npz/JSON/CSV/BVH export."""
