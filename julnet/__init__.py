"""JULNet: a deformation-based talking-face generator with a per-pixel uncertainty head (arXiv 2504.18810)."""
from bench.blocks.uncertainty import UncertaintyHead, reconstruction_loss, uncertainty_l1  # the shared plug-in head
from julnet.model import JULNet

__all__ = ["JULNet", "UncertaintyHead", "reconstruction_loss", "uncertainty_l1"]
