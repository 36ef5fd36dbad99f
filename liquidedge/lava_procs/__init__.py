"""Lava processes and process models of the LTC perception (the Loihi-2 target).

Lava imports every ``.py`` file in a Process's directory while it searches for ProcessModels,
so this package holds only processes (``process.py``), their models (``models.py``) and the
integer arithmetic the ``fixed_pt`` models share with the exporter (``fixed_point.py``); no
module here runs anything at import time. Import ``liquidedge.lava_compat.ensure_lava()`` before
``process``/``models``: lava-nc 0.10 needs a shim on Python >= 3.11.
"""
