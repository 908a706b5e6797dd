"""Backprop chapter: a computational-graph engine and custom-gradient ops."""
