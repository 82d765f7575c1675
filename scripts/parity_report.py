"""Print how far every released model is from Keras 3 (the golden outputs of make_golden.py).

Usage: ``.venv/bin/python scripts/parity_report.py`` (reads ``tests/golden/keras_outputs.npz``
and the models in ``$V4COMPACT_DATA``). For each model: the largest absolute difference over
the 10 reference images, divided by the s.d. of Keras' outputs over those images (per output
column; the worst column for shared models). Also checks the fused population against the
same references. The test suite asserts the same quantities (tests/models/test_parity.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from v4compact.models.zoo import load_model

GOLDEN = Path(__file__).resolve().parents[1] / "tests" / "golden" / "keras_outputs.npz"


def relative_error(pred: np.ndarray, ref: np.ndarray) -> np.ndarray:
    return np.abs(pred - ref).max(axis=0) / ref.std(axis=0)


def main() -> None:
    golden = np.load(GOLDEN, allow_pickle=False)
    images = golden["images"]
    compact = {}
    for model_id, ref in zip(golden["compact_ids"], golden["compact_outputs"], strict=True):
        compact[str(model_id)] = float(relative_error(load_model(str(model_id)).predict(images),
                                                      ref))
    shared = {}
    for model_id, ref in zip(golden["shared_ids"], golden["shared_outputs"], strict=True):
        shared[str(model_id)] = float(relative_error(load_model(str(model_id)).predict(images),
                                                     ref).max())
    population = load_model("population")
    order = [list(golden["compact_ids"]).index(f"compact/{n}") for n in population.neuron_ids]
    pop = relative_error(population.predict(images), golden["compact_outputs"][order].T)
    print("models                     n   worst error / s.d.   median")
    for name, errors in (("compact (one by one)", compact), ("shared", shared)):
        values = np.array(list(errors.values()))
        worst = max(errors, key=errors.get)
        print(f"{name:24s} {len(values):4d}   {values.max():.1e} ({worst})   "
              f"{np.median(values):.1e}")
    print(f"{'population (fused)':24s} {len(pop):4d}   {pop.max():.1e}   {np.median(pop):.1e}")


if __name__ == "__main__":
    main()
