"""Gyre's operator command line."""
