"""Model directories: round trip, and refusal of truncated, tampered or malformed files."""
import json

import numpy as np
import pytest

from liquidedge import reference as ref
from liquidedge.errors import ConfigError, InputShapeError, ModelFileError
from liquidedge.ir import PerceptionGraph, load_model, random_model, save_model


def test_round_trip_preserves_everything(tmp_path):
    m = random_model(readout=8, seed=5)
    m.data_spec = {"steps": 64}
    save_model(m, tmp_path)
    m2 = load_model(tmp_path)
    assert m2.content_hash() == m.content_hash()
    x = np.random.default_rng(0).normal(size=(2, 5, m.perception.n_inputs))
    np.testing.assert_array_equal(ref.perception_forward(m.perception, x, np.ones((2, 5))),
                                  ref.perception_forward(m2.perception, x, np.ones((2, 5))))
    assert m2.data_spec == {"steps": 64}


def test_tampered_weights_are_refused(tmp_path):
    save_model(random_model(), tmp_path)
    header = json.loads((tmp_path / "model.json").read_text())
    header["memory"]["threshold"] = 0.5
    (tmp_path / "model.json").write_text(json.dumps(header))
    with pytest.raises(ModelFileError, match="hash mismatch"):
        load_model(tmp_path)


def test_flipped_weight_byte_is_refused(tmp_path):
    save_model(random_model(), tmp_path)
    raw = bytearray((tmp_path / "weights.safetensors").read_bytes())
    raw[-5] ^= 0x40
    (tmp_path / "weights.safetensors").write_bytes(bytes(raw))
    with pytest.raises(ModelFileError):
        load_model(tmp_path)


def test_truncated_or_missing_files_are_refused(tmp_path):
    save_model(random_model(), tmp_path)
    w = tmp_path / "weights.safetensors"
    w.write_bytes(w.read_bytes()[:100])
    with pytest.raises(ModelFileError, match="truncated"):
        load_model(tmp_path)
    w.unlink()
    with pytest.raises(ModelFileError, match="missing"):
        load_model(tmp_path)


def test_graph_checks_shapes_and_settings():
    g = random_model().perception
    with pytest.raises(InputShapeError):
        PerceptionGraph(g.w_in, g.w_rec[:-1], g.bias, g.tau, g.a, g.wiring)
    with pytest.raises(InputShapeError):
        PerceptionGraph(g.w_in, g.w_rec, g.bias, -g.tau, g.a, g.wiring)
    with pytest.raises(ConfigError):
        PerceptionGraph(g.w_in, g.w_rec, g.bias, g.tau, g.a, g.wiring, solver="dopri")
