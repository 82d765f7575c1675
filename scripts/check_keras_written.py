"""Golden check: ``.keras`` files written by v4compact (without TensorFlow) open in Keras 3.

Two interpreters, because TensorFlow is never a dependency of the package::

    .venv/bin/python scripts/check_keras_written.py [--dir DIR] [--made RUN_DIR/models/x.keras]

does both steps: ``write`` (in this interpreter: v4compact writes ``.keras`` files and the
PyTorch outputs on 10 images to ``DIR/reference.npz``) and ``check`` (in
``.venv-keras/bin/python``, with tensorflow-cpu 2.16 and Keras 3: ``keras.models.load_model``
opens each file, ``predict_on_batch`` runs it, and the outputs are compared). The models:

- ``released``: compact/201025/10 read from the release and written again;
- ``student``: a 100-filter student with random weights and random batch-norm statistics;
- ``linear``: a narrow model without ReLUs;
- ``made``: any file given with ``--made`` (e.g. a model of ``v4compact make-compact``).

Prints, per model, the largest difference to PyTorch divided by the root mean square of the
outputs (the scale float32 rounding acts on; the random student's outputs sit near -11 with
an s.d. of 0.05, so its s.d. would overstate the rounding), and exits 1 if one exceeds 1e-4.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
KERAS_PYTHON = ROOT / ".venv-keras" / "bin" / "python"
TOLERANCE = 1e-4


def write(folder: Path, made: Path | None) -> None:
    """Write the ``.keras`` files and the PyTorch reference outputs (needs v4compact)."""
    import torch

    import v4compact
    from v4compact.images import IMAGE_MEAN
    from v4compact.models.formats.keras_writer import write_keras
    from v4compact.models.nets.compact import CompactModel

    folder.mkdir(parents=True, exist_ok=True)
    session = v4compact.load_session(201025)
    images = np.concatenate([np.asarray(session.images[:6]), np.random.default_rng(0).integers(
        0, 256, (4, 112, 112, 3), dtype=np.uint8)])
    student = CompactModel.student(seed=1, neuron_id="student")
    generator = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for block in student.core.blocks():
            block.bn.running_mean.uniform_(-1, 1, generator=generator)
            block.bn.running_var.uniform_(0.5, 2, generator=generator)
            block.bn.weight.uniform_(0.5, 1.5, generator=generator)
        student.readout.weight.mul_(50)  # Keras' initial dense kernel is tiny at this width
    models = {
        "released": v4compact.load_compact_model(201025, 10),
        "student": student.eval(),
        "linear": CompactModel((8, 6, 5, 4, 3), relu=False).reset_parameters(3).eval(),
    }
    if made is not None:
        models["made"] = v4compact.load_compact_model(made)
    outputs = {}
    for name, model in models.items():
        write_keras(model, folder / f"{name}.keras", {"check": name})
        outputs[name] = model.predict(images)
    np.savez(folder / "reference.npz", images=images, mean=np.asarray(IMAGE_MEAN, np.float32),
             names=np.array(list(outputs)), **{f"out_{k}": v for k, v in outputs.items()})


def check(folder: Path) -> int:
    """Load every file with Keras 3 and compare (runs in the Keras interpreter)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    import keras

    reference = np.load(folder / "reference.npz")
    x = reference["images"].astype(np.float32) - reference["mean"]
    worst, rows = 0.0, []
    for name in reference["names"]:
        model = keras.models.load_model(folder / f"{name}.keras")
        keras_out = np.asarray(model.predict_on_batch(x))[:, 0]
        torch_out = reference[f"out_{name}"]
        scale = float(np.sqrt(np.mean(torch_out.astype(np.float64) ** 2)))
        error = float(np.abs(keras_out - torch_out).max()) / scale
        worst = max(worst, error)
        rows.append({"model": str(name), "layers": len(model.layers),
                     "max_abs_diff": float(np.abs(keras_out - torch_out).max()),
                     "output_rms": scale, "output_sd": float(torch_out.std()),
                     "relative": error})
    print(json.dumps({"keras": keras.__version__, "models": rows}, indent=1))
    print(f"worst difference / output RMS: {worst:.2e} (tolerance {TOLERANCE:.0e})")
    return 0 if worst <= TOLERANCE else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", nargs="?", choices=["write", "check"],
                        help="one step only (default: both, each in its interpreter)")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/v4compact-keras-check"))
    parser.add_argument("--made", type=Path, help="a made model's .keras file to check too")
    args = parser.parse_args()
    if args.step == "write":
        write(args.dir, args.made)
        return 0
    if args.step == "check":
        return check(args.dir)
    write(args.dir, args.made)
    if not KERAS_PYTHON.is_file():
        print(f"error: {KERAS_PYTHON} not found; create it with python -m venv .venv-keras && "
              ".venv-keras/bin/pip install tensorflow-cpu==2.16.1", file=sys.stderr)
        return 1
    return subprocess.run([str(KERAS_PYTHON), __file__, "check", "--dir", str(args.dir)]).returncode


if __name__ == "__main__":
    sys.exit(main())
