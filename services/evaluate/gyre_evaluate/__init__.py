"""Gyre Evaluate: golden sets, runs of the live pipeline, answer-quality metrics, comparisons, the gate."""
