"""Sweeps that train many small nets at once: seeds and equal-shape configs through `jax.vmap`."""
