"""JULNet: a deformation-based talking-face generator with a per-pixel uncertainty head (arXiv 2504.18810)."""
from julnet.model import JULNet
from julnet.uncertainty import UncertaintyHead, reconstruction_loss, uncertainty_l1

__all__ = ["JULNet", "UncertaintyHead", "reconstruction_loss", "uncertainty_l1"]
