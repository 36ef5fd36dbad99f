"""The torch hybrid against ``reference.run_stream``: whole streams, feedback and memory included,
on random and on real E-mini windows; IR conversion both ways through a saved model directory."""
import numpy as np
import pytest
import torch

from liquidedge import reference as ref
from liquidedge.errors import InputShapeError
from liquidedge.ir import load_model, random_model, save_model
from liquidedge.model.hybrid import LiquidTitan
from liquidedge.wiring import NCPWiring


def _random_stream(rng, n=10, t=16, f=6):
    feat = rng.normal(0.3, 2.0, (n, t, f)).astype(np.float32)
    dt = rng.lognormal(0, 0.7, (n, t)).astype(np.float32)
    mask = np.ones((n, t), np.float32)
    mask[2, :4] = 0
    dt[2, :4] = 0
    feat[2, :4] = 0
    return feat, dt, mask


def _torch_run(net, model, feat, dt, mask, memory_on=True):
    """The hybrid on the same stream, normalised exactly as ``reference.model_inputs`` does."""
    x = (feat - model.norm_mean) / model.norm_std * mask[..., None]
    with torch.no_grad():
        return net.run(x[None], (dt / model.dt_unit)[None], mask[None], memory_on=memory_on)


def _threshold_with_margin(model, feat, dt, mask):
    """A threshold gating some windows, with no score within 1e-4 of it (same fp32/fp64 decisions)."""
    scores = ref.run_stream(model, feat, dt, mask)["score"]
    for q in (0.5, 0.4, 0.6, 0.3, 0.7):
        model.memory.threshold = float(np.quantile(scores, q))
        out = ref.run_stream(model, feat, dt, mask)
        if np.min(np.abs(out["score"] - model.memory.threshold)) > 1e-4 and 0 < out["updated"].mean() < 1:
            return
    raise AssertionError("no threshold with a safe margin")


@pytest.mark.parametrize("variant", ["dense", "ncp_rk4_readout", "depth1_huber_threshold", "no_feedback"])
def test_stream_matches_reference_on_random_windows(variant):
    rng = np.random.default_rng(0)
    feat, dt, mask = _random_stream(rng)
    kw = {}
    if variant == "ncp_rk4_readout":
        w = NCPWiring.small(seed=1)
        kw = dict(hidden=w.units, wiring=w.mask(), solver="rk4", unfolds=2, readout=8)
        dt = np.minimum(dt, 1.0)
    elif variant == "depth1_huber_threshold":
        kw = dict(depth=1)
    elif variant == "no_feedback":
        kw = dict(feedback=0)
    model = random_model(n_features=6, seed=3, **kw)
    model.norm_mean = rng.normal(0, 1, 6).astype(np.float32)
    model.norm_std = rng.uniform(0.5, 2, 6).astype(np.float32)
    model.dt_unit = 1.7
    if variant == "depth1_huber_threshold":
        model.memory.attentional_bias, model.memory.huber_delta = "huber", 0.3
        _threshold_with_margin(model, feat, dt, mask)
    want = ref.run_stream(model, feat, dt, mask)
    got = _torch_run(LiquidTitan.from_ir(model), model, feat, dt, mask)
    np.testing.assert_allclose(got.prediction[0].numpy(), want["prediction"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(got.embedding[0].numpy(), want["embedding"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(got.retrieved[0].numpy(), want["retrieved"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(got.score[0].numpy(), want["score"], atol=1e-5, rtol=1e-5)
    np.testing.assert_array_equal(got.updated[0].numpy(), want["updated"])
    off = ref.run_stream(model, feat, dt, mask, memory_on=False)
    got_off = _torch_run(LiquidTitan.from_ir(model), model, feat, dt, mask, memory_on=False)
    np.testing.assert_allclose(got_off.prediction[0].numpy(), off["prediction"], atol=1e-5, rtol=0)


def test_stream_matches_reference_on_real_emini_windows(emini):
    from liquidedge.data import Normaliser

    ds = emini.take(np.arange(200, 240))
    norm = Normaliser(ds.feature_names).fit(emini.x, emini.mask, emini.dt_s)
    net = LiquidTitan.build(ds.x.shape[-1], hidden=32, mem_dim=16, output_bias=np.array([-7.5, 0.0]), seed=4)
    model = net.to_ir(norm.mean, norm.std, norm.dt_unit, data_spec=ds.spec.to_dict())
    want = ref.run_stream(model, ds.x, ds.dt_s, ds.mask)
    with torch.no_grad():
        got = net.run(norm.apply(ds.x, ds.mask)[None], norm.scale_dt(ds.dt_s, ds.mask)[None],
                      ds.mask.astype(np.float32)[None])
    np.testing.assert_allclose(got.prediction[0].numpy(), want["prediction"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(got.score[0].numpy(), want["score"], atol=1e-5, rtol=1e-5)


def test_streams_in_a_batch_are_independent():
    rng = np.random.default_rng(1)
    net = LiquidTitan.build(6, hidden=12, mem_dim=8, seed=2)
    x = torch.as_tensor(rng.normal(size=(3, 5, 10, 6)), dtype=torch.float32)
    dt = torch.as_tensor(rng.uniform(0.1, 3, (3, 5, 10)), dtype=torch.float32)
    mask = torch.ones(3, 5, 10)
    with torch.no_grad():
        batch = net.run(x, dt, mask)
        for i in range(3):
            one = net.run(x[i:i + 1], dt[i:i + 1], mask[i:i + 1])
            torch.testing.assert_close(batch.prediction[i], one.prediction[0], atol=1e-6, rtol=0)


def test_the_prediction_comes_back_to_the_perception():
    rng = np.random.default_rng(2)
    net = LiquidTitan.build(6, hidden=12, mem_dim=8, seed=5)
    x = torch.as_tensor(rng.normal(size=(1, 1, 10, 6)), dtype=torch.float32)
    dt, mask = torch.ones(1, 1, 10), torch.ones(1, 1, 10)
    with torch.no_grad():
        a = net.run(x, dt, mask, prev=torch.zeros(1, 2))
        b = net.run(x, dt, mask, prev=torch.tensor([[-7.0, 1.0]]))
        # continuing a stream equals running it in one go (state and feedback carried over)
        whole = net.run(x.repeat(1, 4, 1, 1), dt.repeat(1, 4, 1), mask.repeat(1, 4, 1))
        first = net.run(x.repeat(1, 2, 1, 1), dt.repeat(1, 2, 1), mask.repeat(1, 2, 1))
        rest = net.run(x.repeat(1, 2, 1, 1), dt.repeat(1, 2, 1), mask.repeat(1, 2, 1), first.state,
                       first.last_prediction)
    assert not torch.allclose(a.embedding, b.embedding, atol=1e-4)
    torch.testing.assert_close(torch.cat([first.prediction, rest.prediction], 1), whole.prediction)


def test_saved_model_round_trip(tmp_path):
    rng = np.random.default_rng(3)
    net = LiquidTitan.build(6, wiring=NCPWiring.small(seed=2), mem_dim=8, mem_depth=1, readout=6, seed=6)
    model = net.to_ir(rng.normal(size=6), rng.uniform(0.5, 2, 6), 2.5, threshold=0.1, bypass_threshold=3.0,
                      calibration={"note": "test"}, training={"task": "market"})
    save_model(model, tmp_path / "m")
    back = load_model(tmp_path / "m")
    assert back.memory.threshold == pytest.approx(0.1) and back.memory.bypass_threshold == pytest.approx(3.0)
    assert back.content_hash() == model.content_hash()
    feat, dt, mask = _random_stream(rng, n=6)
    want = ref.run_stream(back, feat, dt, mask)
    got = _torch_run(LiquidTitan.from_ir(back), back, feat, dt, mask)
    np.testing.assert_allclose(got.prediction[0].numpy(), want["prediction"], atol=1e-5, rtol=0)


def test_bad_shapes_are_refused():
    net = LiquidTitan.build(6, hidden=8, mem_dim=4)
    with pytest.raises(InputShapeError):
        net.run(np.zeros((1, 2, 5, 7)), np.ones((1, 2, 5)), np.ones((1, 2, 5)))
    with pytest.raises(InputShapeError):
        net.run(np.zeros((1, 2, 5, 6)), np.ones((1, 2, 4)), np.ones((1, 2, 5)))
    with pytest.raises(InputShapeError):
        net.run(np.zeros((2, 2, 5, 6)), np.ones((2, 2, 5)), np.ones((2, 2, 5)), state=net.memory.init_state(3))
    with pytest.raises(InputShapeError):
        net.run(np.full((1, 1, 5, 6), np.nan), np.ones((1, 1, 5)), np.ones((1, 1, 5)))


@pytest.fixture(scope="module")
def emini():
    from liquidedge.data import SampleDataMissingError, build_dataset, load_default_ticks
    try:
        return build_dataset(load_default_ticks())
    except SampleDataMissingError as exc:
        pytest.skip(str(exc))
