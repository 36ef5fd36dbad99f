"""The one compatibility shim that lets lava-nc 0.10.0 import on Python >= 3.11.

What it fixes: ``lava/magma/compiler/var_model.py`` declares dataclass fields such as
``x: ByteEncoder = ByteEncoder()``. ``ByteEncoder`` is itself a (non-frozen) dataclass, hence
unhashable, and since Python 3.11 ``dataclasses`` rejects an unhashable default as a "mutable
default" with ``ValueError`` at import time. Every Lava run imports that module (the compiler and
the runtime both do), so without this shim no Lava process can be compiled.

How: when (and only when) ``lava.magma.compiler.var_model`` is imported, its source is read from
site-packages and compiled in memory with each ``= ByteEncoder()`` default written as
``= field(default_factory=ByteEncoder)`` - what the authors meant, and what Python 3.10 did
anyway except that every instance now gets its own encoder instead of one shared object. Nothing
on disk is touched and no bytecode is cached. If the pattern is absent (a fixed lava-nc), the
module is imported untouched.

When it can go: as soon as the installed lava-nc supports Python 3.11 (its ``var_model`` no
longer uses instance defaults), delete the import hook; ``ensure_lava()`` then only checks that
lava-nc is installed and that a stray ``lava.py`` (``benchmarks/lava.py`` when a benchmark script
runs) does not hide the package.
"""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import re
import sys

from liquidedge.errors import TargetUnavailableError

_TARGET = "lava.magma.compiler.var_model"
_DEFAULT = re.compile(r"=\s*ByteEncoder\(\)")
_FIXED = "= _liquidedge_field(default_factory=ByteEncoder)"
_IMPORT = "from dataclasses import field as _liquidedge_field\n"


class _PatchedVarModelLoader(importlib.machinery.SourceFileLoader):
    """Compiles var_model from patched source text; never reads or writes cached bytecode."""

    def get_code(self, fullname):  # noqa: D102 - importlib hook
        source = self.get_data(self.path).decode("utf-8")
        patched, n = _DEFAULT.subn(_FIXED, source)
        if n:
            # Insert after the ``from __future__`` line, which must stay first.
            head, sep, tail = patched.partition("from __future__ import annotations\n")
            patched = head + sep + _IMPORT + tail if sep else _IMPORT + patched
        return compile(patched, self.path, "exec", dont_inherit=True)


class _VarModelFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname != _TARGET:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or not isinstance(spec.loader, importlib.machinery.SourceFileLoader):
            return spec
        spec.loader = _PatchedVarModelLoader(fullname, spec.origin)
        return spec


_FINDER = _VarModelFinder()


def install() -> None:
    """Register the import hook (idempotent); needed only on Python >= 3.11."""
    if sys.version_info >= (3, 11) and _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)


def ensure_lava() -> None:
    """Make lava-nc importable, or raise TargetUnavailableError saying why it is not."""
    install()
    _load_package_past_shadow()
    if importlib.util.find_spec("lava") is None:
        raise TargetUnavailableError(
            "the Loihi-2 target needs lava-nc (pip install --no-deps lava-nc==0.10.0; "
            "see requirements/nodeps.txt)")
    try:
        importlib.import_module(_TARGET)
        importlib.import_module("lava.magma.core.run_configs")
    except Exception as exc:  # any import-time failure of the third-party stack
        raise TargetUnavailableError(f"lava-nc is installed but cannot be imported: {exc}") from exc


def _load_package_past_shadow() -> None:
    """Import the lava-nc *package* even when a plain ``lava.py`` comes first on sys.path.

    Running any script in ``benchmarks/`` puts that folder first on sys.path, and its
    ``benchmarks/lava.py`` would then be found instead of lava-nc.
    """
    loaded = sys.modules.get("lava")
    if loaded is not None and hasattr(loaded, "__path__"):
        return
    spec = importlib.util.find_spec("lava") if loaded is None else None
    if loaded is None and (spec is None or spec.submodule_search_locations is not None):
        return
    origin = getattr(loaded, "__file__", None) or spec.origin
    shadow = os.path.dirname(os.path.abspath(origin))
    path = [p for p in sys.path if os.path.abspath(p or os.curdir) != shadow]
    real = importlib.machinery.PathFinder.find_spec("lava", path)
    if real is None or real.submodule_search_locations is None:
        raise TargetUnavailableError(f"'lava' resolves to {origin}, which is not the lava-nc package")
    module = importlib.util.module_from_spec(real)
    sys.modules["lava"] = module
    real.loader.exec_module(module)
