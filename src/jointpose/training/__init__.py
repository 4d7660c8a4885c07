"""Training: configuration, the training loop, checkpoints, distributed runs, ablations."""
