"""Evaluations: golden sets, runs of a set through the live pipeline, their metrics, report and chart."""
