"""Shared building blocks: the parts every model may use, so julnet/ and baselines/ need not import each other.

``masks`` (the protocol's mask as tensors), ``uncertainty`` (the plug-in UncertaintyHead and the
Lun1 / Lun2 reconstruction loss), ``generator`` (the InpaintingGenerator base), ``histogram`` (Lun2's soft
histogram KL), ``adaat`` (AdaAT), ``discriminator`` (the LSGAN frame discriminator and its losses)
and ``perceptual`` (the VGG perceptual loss). They import torch and ``bench.api`` only; the one
exception is ``perceptual``, which loads its provisioned weights through ``bench.weights.store`` on use.
"""
