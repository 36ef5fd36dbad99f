"""The lava-nc 0.10 / Python 3.11 compatibility shim."""
import subprocess
import sys

import pytest

from liquidedge import lava_compat

PROBE = "import lava.magma.compiler.var_model as m; a, b = m.CoreEncoder(), m.CoreEncoder(); print(a.x is b.x)"


@pytest.mark.skipif(sys.version_info < (3, 11), reason="the bug only exists on Python >= 3.11")
def test_var_model_fails_without_the_shim_and_imports_with_it():
    bare = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True)
    assert bare.returncode != 0 and "mutable default" in bare.stderr
    shimmed = subprocess.run([sys.executable, "-c", "from liquidedge.lava_compat import ensure_lava; "
                              "ensure_lava(); ensure_lava(); " + PROBE], capture_output=True, text=True)
    assert shimmed.returncode == 0, shimmed.stderr
    assert shimmed.stdout.strip() == "False"  # each encoder now owns its defaults


def test_a_module_shadowing_lava_does_not_hide_the_package(tmp_path, monkeypatch):
    (tmp_path / "lava.py").write_text("SHADOW = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "lava", raising=False)
    lava_compat.ensure_lava()
    assert hasattr(sys.modules["lava"], "__path__") and not hasattr(sys.modules["lava"], "SHADOW")
