"""Calibration: representative windows, the runtimes' readers over them, the surprise threshold,
and the agreement of every exported artefact with the fp32 reference.

Submodules are imported where needed (``windows``, ``readers``, ``agreement``, ``threshold``):
this package imports nothing heavy on its own.
"""
