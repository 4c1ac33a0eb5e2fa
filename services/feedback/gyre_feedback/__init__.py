"""The feedback service: ratings joined to the generation they rate."""
