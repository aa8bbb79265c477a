"""Evaluation harness: the frame scorer, model evaluation, external-video scoring, ``bench run``,
the run directory and run comparison."""
