"""Evaluation: rollouts, baselines, metrics and reports."""
