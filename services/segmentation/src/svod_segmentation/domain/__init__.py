"""Segmentation's pure model: rule trees, their validation, built-in definitions, access."""
