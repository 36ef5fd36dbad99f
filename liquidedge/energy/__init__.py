"""liquidedge.energy"""
