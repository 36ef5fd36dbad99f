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

A second, smaller fix in the same spirit: lava's ``message_infrastructure/multiprocessing.py``
calls ``multiprocessing.set_start_method('fork')`` at import time without ``force``, which raises
``RuntimeError: context has already been set`` when anything in the process (litert-torch's
converter does) touched the start method first. ``ensure_lava`` imports that module once with the
call forced; Lava needs 'fork' anyway, which is also Linux's default.

When it can go: as soon as the installed lava-nc supports Python 3.11 (its ``var_model`` no
longer uses instance defaults and its start-method call is guarded), delete this module;
``ensure_lava()`` then only checks that lava-nc is installed.
"""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
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
    if importlib.util.find_spec("lava") is None:
        raise TargetUnavailableError(
            "the Loihi-2 target needs lava-nc (pip install --no-deps lava-nc==0.10.0; "
            "see requirements/nodeps.txt)")
    try:
        _import_forcing_fork("lava.magma.runtime.message_infrastructure.multiprocessing")
        importlib.import_module(_TARGET)
        importlib.import_module("lava.magma.core.run_configs")
    except Exception as exc:  # any import-time failure of the third-party stack
        raise TargetUnavailableError(f"lava-nc is installed but cannot be imported: {exc}") from exc


def _import_forcing_fork(module: str) -> None:
    """Import ``module`` with ``multiprocessing.set_start_method`` forced (see the docstring)."""
    import multiprocessing

    if module in sys.modules:
        return
    original = multiprocessing.set_start_method
    multiprocessing.set_start_method = lambda method, force=False: original(method, force=True)
    try:
        importlib.import_module(module)
    finally:
        multiprocessing.set_start_method = original
