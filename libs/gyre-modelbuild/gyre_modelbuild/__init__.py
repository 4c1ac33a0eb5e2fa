"""Builds Gyre's default models (export + quantise) into a model folder; see build.sh."""
