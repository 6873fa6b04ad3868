"""Whole models built from a recipe: backbone + head, or end-to-end networks."""
