"""Torch modules for training only: the LTC perception, the Titans memory, the hybrid and training."""
