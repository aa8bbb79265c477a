"""Baseline generators evaluated beside JULNet."""
