"""In-silico experiments on a real compact model."""

from __future__ import annotations

import csv

import numpy as np
from matplotlib.figure import Figure

from v4compact.experiments import gaudy_experiment, tuning_curve
from v4compact.images import gaudy, grayscale


def test_tuning_curve_table_summary_figure(compact_model, tmp_path):
    sizes = [4, 8, 16, 32, 64]
    result = tuning_curve(compact_model, "dot", "size", sizes, color=(255, 255, 255))
    assert len(result.table) == 5 and result.table.columns[-1] == "response"
    direct = compact_model.predict(result.images)
    np.testing.assert_allclose(result.table.column("response"), direct, rtol=1e-4, atol=1e-4)
    row = result.summary.rows[0]
    assert row["preferred_value"] == sizes[int(np.argmax(direct))]
    assert np.isclose(row["modulation"], direct.max() - direct.min(), atol=1e-4)
    assert isinstance(result.figure, Figure)
    paths = result.save(tmp_path, "dot_size")
    assert [p.name for p in paths] == ["dot_size.csv", "dot_size_summary.csv", "dot_size.png"]
    assert len(list(csv.DictReader(paths[0].open()))) == 5


def test_colour_tuning_uses_categorical_values(compact_model):
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    result = tuning_curve(compact_model, "color_patch", "color", colours, size=60)
    assert result.table.column("value").tolist() == ["(255,0,0)", "(0,255,0)", "(0,0,255)"]


def test_gaudy_experiment_matches_direct_predictions(compact_model, some_images):
    result = gaudy_experiment(compact_model, some_images)
    assert len(result.table) == 12
    np.testing.assert_allclose(result.table.column("gaudy"),
                               compact_model.predict(gaudy(some_images)), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(result.table.column("grayscale"),
                               compact_model.predict(grayscale(some_images)), rtol=1e-4,
                               atol=1e-4)
    summary = result.summary.rows[0]
    assert 0 <= summary["frac_gaudy_above_natural"] <= 1
    assert set(np.unique(result.images)) <= {0, 255}
    assert isinstance(result.figure, Figure)
