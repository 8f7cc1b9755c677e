"""Depth completion: the classical morphological pipeline (always available) and the learned network."""
