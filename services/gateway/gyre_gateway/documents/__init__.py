"""Documents: submit, read status, delete."""
