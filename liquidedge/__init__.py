"""liquidedge: train a Liquid-Titan model and deploy its perception to edge and neuromorphic targets."""
__version__ = "0.1.0"
