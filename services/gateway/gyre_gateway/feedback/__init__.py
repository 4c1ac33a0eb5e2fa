"""Feedback on answers: ratings, comments, corrections."""
