"""Evaluation data: corpora of Debian documentation with golden sets, and the CI gate set."""
