"""The improve service: feedback tallies per prompt version and per model (more to come)."""
