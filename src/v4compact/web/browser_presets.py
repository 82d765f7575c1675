"""The synthesis presets the browser runs, as JSON for ``static/v4synth.js``.

``V4.synthesize`` in the static site implements :func:`v4compact.synthesis.render` for
pixel images with the normalised-gradient update (the upstream step rule, with or without
the random transforms and the total-variation penalty). :func:`preset_table` exports every
preset of :data:`v4compact.synthesis.presets.PRESETS` it can run, with all their settings
taken from the presets themselves, so the page never restates a number.
"""

from __future__ import annotations

from ..synthesis.presets import PRESETS, Preset

__all__ = ["BROWSER_OPTIMIZER", "BROWSER_PARAM", "preset_table", "runs_in_browser"]

#: The parameterisation ``v4synth.js`` implements.
BROWSER_PARAM = "pixel"
#: The update rule ``v4synth.js`` implements.
BROWSER_OPTIMIZER = "normalized_gradient"


def runs_in_browser(preset: Preset) -> bool:
    """True when ``V4.synthesize`` implements ``preset`` (pixel images, upstream update)."""
    return preset.param == BROWSER_PARAM and preset.optimizer == BROWSER_OPTIMIZER


def preset_table() -> dict[str, dict]:
    """The presets the browser runs, by name, as plain JSON-able dicts.

    Returns:
        ``{name: settings}``; ``settings`` holds every field of
        :class:`~v4compact.synthesis.presets.Preset` (tuples as lists), in its units
        (pixels, pixel units per step, degrees). The static site writes it to a JSON file
        and passes it to ``V4.synthesize({presetTable, preset: name, ...})``.
    """
    return {
        name: {key: list(value) if isinstance(value, tuple) else value
               for key, value in preset.to_dict().items()}
        for name, preset in sorted(PRESETS.items())
        if runs_in_browser(preset)
    }
