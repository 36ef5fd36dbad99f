"""liquidedge.deploy"""
