"""`gyre models compare`: candidates measured through the evaluate service, and the model-selection report."""
