"""``evaluate("compact")``: one fused population per session vs one model at a time.

Scores every compact model of the chosen sessions on its session's held-out half (with
bootstrap intervals, as ``v4compact evaluate compact`` does) two ways, side by side in one
run, and checks that both give the same numbers:

* ``per session`` — ``evaluate("compact", sessions=...)``: the session's neurons fused into
  one population, one pass over the session's images (today's path);
* ``one at a time`` — ``evaluate(["compact/<session>/<k>", ...])``: each model loaded and run
  on its session's images on its own (the path before the fused evaluation).

Usage::

    python benchmarks/bench_evaluate.py                          # the four model sessions
    python benchmarks/bench_evaluate.py --sessions 190923 --num-boot 200

Only sessions whose images are in the data directory are scored (the others have no
held-out images to predict).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from v4compact.data.catalog import MODEL_SESSIONS
from v4compact.data.session import load_session
from v4compact.evaluation import evaluate
from v4compact.models.zoo import session_neuron_ids


def _values(result) -> dict[tuple[str, int], float]:
    return {(s.neuron_id, s.session): s.value for s in result.scored}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", nargs="+", type=int, default=list(MODEL_SESSIONS))
    parser.add_argument("--num-boot", type=int, default=1000)
    args = parser.parse_args(argv)

    sessions = [s for s in args.sessions if load_session(s).has_images]
    ids = [f"compact/{nid}" for s in sessions for nid in session_neuron_ids(s)]
    print(f"{len(ids)} compact models of sessions {sessions} (held-out halves, "
          f"{args.num_boot} bootstrap resamples), {torch.get_num_threads()} CPU threads")

    rows = []
    t0 = time.perf_counter()
    fused = evaluate("compact", sessions=sessions, num_boot=args.num_boot, progress=False)
    rows.append(("per session (fused)", time.perf_counter() - t0))
    t0 = time.perf_counter()
    single = evaluate(ids, sessions=sessions, num_boot=args.num_boot, progress=False)
    rows.append(("one model at a time", time.perf_counter() - t0))

    a, b = _values(fused), _values(single)
    if a.keys() != b.keys():
        raise SystemExit(f"the two paths scored different neurons: {len(a)} vs {len(b)}")
    diff = max(abs(a[k] - b[k]) for k in a)
    print(f"\n{'path':<24}{'seconds':>9}{'models/s':>10}{'speed-up':>10}")
    for name, sec in rows:
        print(f"{name:<24}{sec:>9.1f}{len(ids) / sec:>10.2f}{rows[1][1] / sec:>9.1f}x")
    print(f"\nsame scores: largest difference {diff:.1e} "
          f"(median {np.median(list(a.values())):.3f}, metric {fused.scored[0].metric})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
