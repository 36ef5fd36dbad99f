"""The end-to-end demo in its quick form: every stage really runs and the report says what it measured."""
import json

import numpy as np

from liquidedge.demo import DemoConfig, run_demo
from liquidedge.ir import load_model


def test_quick_demo_runs_every_stage_and_writes_the_report(tmp_path):
    result = run_demo(DemoConfig(out=tmp_path, quick=True, train_budget_s=20))
    model = load_model(result.model_dir)
    names = [t.name for t in result.targets]
    assert {"ONNX Runtime fp32", "ONNX Runtime int8", "LiteRT fp32", "LiteRT int8",
            "Loihi-2 (Lava) floating_pt", "Loihi-2 (Lava) fixed_pt"} <= set(names)
    by_name = {t.name: t for t in result.targets}
    for fp32 in ("ONNX Runtime fp32", "LiteRT fp32", "Loihi-2 (Lava) floating_pt"):
        assert by_name[fp32].agreement["max_abs_error"] < 1e-4
        assert by_name[fp32].agreement["decision_agreement"] == 1.0
    for t in result.targets:
        assert t.energy["uj"] > 0 and t.energy["method"] in ("estimated", "measured")
        assert t.agreement["cosine_min"] > 0.99
    # the host served every window, and its surprise is the numpy reference memory's
    results = result.stream["results"]
    assert results and all(r.source == "host" for r in results)
    assert result.stream["max_surprise_diff"] < 1e-4
    assert np.isclose(result.stream["threshold"], model.memory.threshold)
    for png in ("price_surprise.png", "forecast.png", "energy.png"):
        assert (tmp_path / "report" / png).stat().st_size > 10_000
    page = result.report_html.read_text()
    assert "LiteRT int8" in page and "<img" in page
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["seconds"]["total"] > 0 and len(summary["targets"]) == len(names)
