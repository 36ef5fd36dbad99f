"""The lava-nc 0.10 / Python 3.11 compatibility shim."""
import subprocess
import sys

import pytest

PROBE = "import lava.magma.compiler.var_model as m; a, b = m.CoreEncoder(), m.CoreEncoder(); print(a.x is b.x)"


@pytest.mark.skipif(sys.version_info < (3, 11), reason="the bug only exists on Python >= 3.11")
def test_var_model_fails_without_the_shim_and_imports_with_it():
    bare = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True)
    assert bare.returncode != 0 and "mutable default" in bare.stderr
    shimmed = subprocess.run([sys.executable, "-c", "from liquidedge.lava_compat import ensure_lava; "
                              "ensure_lava(); ensure_lava(); " + PROBE], capture_output=True, text=True)
    assert shimmed.returncode == 0, shimmed.stderr
    assert shimmed.stdout.strip() == "False"  # each encoder now owns its defaults


def test_lava_imports_after_the_start_method_was_set_elsewhere():
    # litert-torch's converter sets the start method; lava-nc then called set_start_method unforced.
    code = ("import multiprocessing as mp; mp.set_start_method('spawn'); "
            "from liquidedge.lava_compat import ensure_lava; ensure_lava(); "
            "import lava.magma.runtime.message_infrastructure.multiprocessing; print(mp.get_start_method())")
    bare = subprocess.run([sys.executable, "-c", "import multiprocessing as mp; mp.set_start_method('spawn'); "
                           "from liquidedge.lava_compat import install; install(); "
                           "import lava.magma.runtime.message_infrastructure.multiprocessing"],
                          capture_output=True, text=True)
    assert bare.returncode != 0 and "context has already been set" in bare.stderr
    shimmed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert shimmed.returncode == 0, shimmed.stderr
    assert shimmed.stdout.strip() == "fork"
