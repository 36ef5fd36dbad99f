"""liquidedge.calibration"""
