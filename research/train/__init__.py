"""Training: train state, jitted steps, sharding mesh, checkpoints, metrics."""
