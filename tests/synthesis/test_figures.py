"""The figure-2a contact sheet."""

from __future__ import annotations

import pytest
from matplotlib.figure import Figure

from v4compact.errors import InvalidInputError
from v4compact.figures.synthesis import contact_sheet, synthesis_figure
from v4compact.synthesis import synthesize


def test_contact_sheet_titles_each_image_with_its_response(compact_2, tmp_path):
    result = synthesize(compact_2, seeds=3, steps=2, progress=False)
    fig = synthesis_figure(result, reference=2.8)
    assert isinstance(fig, Figure)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == [f"{r:.2f}" for r in result.target_responses]
    assert "201025/2" in fig._suptitle.get_text() and "natural max 2.80" in \
        fig._suptitle.get_text()
    fig.savefig(tmp_path / "sheet.png")
    with pytest.raises(InvalidInputError, match="one response per image"):
        contact_sheet(result.images, [1.0])
    with pytest.raises(InvalidInputError, match="no images of neuron"):
        synthesis_figure(result, neuron="201025/3")
