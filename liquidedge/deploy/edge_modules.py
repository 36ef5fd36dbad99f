"""Which parts of the liquidedge package a bundle carries, found by reading their imports.

A bundle must run on a board with numpy and its runtime only, so it carries the *edge subset* of
the package as source files rather than depending on an installed liquidedge (whose full
dependency list includes torch). The subset is the import closure of a few root modules,
computed from the source with ``ast`` (nothing is imported). Every module in the closure is
checked: a top-level import of anything outside the standard library and the device's
requirements (torch, pandas, typer, ...) fails the build, so "no torch on a Pi" cannot regress
silently.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import liquidedge
from liquidedge.errors import DeployError

PACKAGE_DIR = Path(liquidedge.__file__).resolve().parent

# Top-level imports a device module may make (beyond the standard library and liquidedge).
DEVICE_IMPORTS = frozenset({"numpy", "safetensors", "google", "grpc", "onnxruntime", "ai_edge_litert",
                            "tflite_runtime"})

# What every bundle needs: the entry point (verify, self-test, the edge loop) and its runners.
BASE_ROOTS = ("liquidedge.deploy.device", "liquidedge.targets.numpy_ref")
RUNTIME_ROOTS = {
    "onnxruntime": ("liquidedge.targets.onnxruntime",),
    "litert": ("liquidedge.targets.litert",),
    "numpy": (),
}


def module_path(name: str) -> Path:
    """Source file of a liquidedge module name (package -> its __init__.py)."""
    rel = Path(*name.split(".")[1:])
    pkg = PACKAGE_DIR / rel / "__init__.py"
    if pkg.is_file():
        return pkg
    mod = (PACKAGE_DIR / rel).with_suffix(".py")
    if mod.is_file():
        return mod
    raise DeployError(f"module {name} is needed on the device but has no source file under {PACKAGE_DIR}")


def _is_package(name: str) -> bool:
    return (PACKAGE_DIR / Path(*name.split(".")[1:]) / "__init__.py").is_file()


def _exists(name: str) -> bool:
    try:
        module_path(name)
        return True
    except DeployError:
        return False


def _imports(name: str) -> tuple[set[str], set[str]]:
    """(liquidedge modules imported anywhere in ``name``, third-party roots imported at top level)."""
    path = module_path(name)
    tree = ast.parse(path.read_text(), str(path))
    package = name if _is_package(name) else name.rsplit(".", 1)[0]
    ours: set[str] = set()
    top_level_external: set[str] = set()
    top_nodes = set(map(id, tree.body))
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [mod]
            # ``from liquidedge.x import y`` may name a submodule y
            targets += [f"{mod}.{a.name}" for a in node.names if _exists(f"{mod}.{a.name}")] \
                if mod.startswith("liquidedge") else []
        else:
            continue
        for t in targets:
            root = t.split(".")[0]
            if root == "liquidedge":
                ours.add(t)
            elif id(node) in top_nodes and root not in sys.stdlib_module_names and root != "__future__":
                top_level_external.add(root)
    return ours, top_level_external


def edge_closure(roots: tuple[str, ...] | list[str]) -> list[str]:
    """Every liquidedge module (and parent package) reachable from ``roots``, checked for
    device-safe top-level imports. Raises DeployError naming the offending module."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen or name == "liquidedge.__future__":
            continue
        if not _exists(name):
            continue  # e.g. ``from liquidedge.x import some_function``: x itself is queued
        seen.add(name)
        parts = name.split(".")
        for i in range(1, len(parts)):
            todo.append(".".join(parts[:i]))
        ours, external = _imports(name)
        bad = sorted(external - DEVICE_IMPORTS)
        if bad:
            raise DeployError(f"{name} ({module_path(name)}) imports {bad} at module level; the device "
                              f"has only numpy, safetensors, grpc/protobuf and its runtime. Move the "
                              f"import into the function that needs it.")
        todo.extend(ours)
    return sorted(seen)


def edge_files(runtime: str) -> dict[str, Path]:
    """Bundle-relative path -> source file, for the edge subset that runs ``runtime``."""
    roots = list(BASE_ROOTS) + [r for r in RUNTIME_ROOTS.get(runtime, ()) if _exists(r)]
    if runtime in RUNTIME_ROOTS and RUNTIME_ROOTS[runtime] and not any(_exists(r) for r in RUNTIME_ROOTS[runtime]):
        raise DeployError(f"no runner module for runtime {runtime!r} ({RUNTIME_ROOTS[runtime]}) in this liquidedge")
    out = {}
    for name in edge_closure(roots):
        src = module_path(name)
        out[str(Path("liquidedge") / src.relative_to(PACKAGE_DIR))] = src
    return out
