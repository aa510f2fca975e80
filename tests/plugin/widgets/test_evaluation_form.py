"""The Evaluation dock's threshold sliders take their ranges and tooltips from the schema."""

from __future__ import annotations

import pytest

from napari_caiman.engine.resolve import thresholds
from napari_caiman.engine.schema import SPEC_BY_NAME
from napari_caiman.plugin.widgets._evaluation_form import SLIDER_RANGES, THRESHOLDS

pytestmark = pytest.mark.gui


def test_sliders_follow_the_schema(viewer):
    _, widget = viewer.window.add_plugin_dock_widget("napari-caiman", "Evaluation / curation")
    defaults = thresholds(None)
    assert [s.name for s in widget.sliders] == list(THRESHOLDS)
    for slider in widget.sliders:
        spec = SPEC_BY_NAME[slider.name]
        # the tooltip the user hovers is the schema's (the CLI's and the docs' wording)
        assert slider.tooltip == spec.tooltip
        assert slider.value == pytest.approx(float(defaults[slider.name]))
        if spec.form is not None:  # the schema's range, not a copy of it
            assert (slider.min, slider.max, slider.step) == pytest.approx(spec.form)
            assert slider.name not in SLIDER_RANGES
        else:  # the form's own range stays within what the schema accepts
            assert spec.minimum is None or slider.min >= spec.minimum
            assert spec.maximum is None or slider.max <= spec.maximum
    # the accept tests say that either one accepts
    assert "rval_thr" in widget.min_SNR.tooltip and "min_SNR" in widget.rval_thr.tooltip
