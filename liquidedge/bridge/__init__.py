"""liquidedge.bridge"""
