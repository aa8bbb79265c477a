"""The training loop, checkpoints, the adversarial and sync critics, and distributed set-up."""
