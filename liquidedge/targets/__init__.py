"""Targets: artefacts -> runners with one protocol (see ``base.load_runner``)."""
from liquidedge.targets.base import ArtefactManifest, PerceptionRunner, load_runner, read_manifest

__all__ = ["ArtefactManifest", "PerceptionRunner", "load_runner", "read_manifest"]
