"""The closed loop measured on real data: do images chosen by committee disagreement fit a
mapping better than as many random images?

For one session: the pool is its fit half, the test set its held-out half (never chosen).
Each seed draws a random start of 1/8 of the session's images from the pool, fits a
bootstrap committee (``--bootstrap`` ridge mappings of the backbone's features) on it, and
adds images up to a quarter of the session either by disagreement (the committee's variance,
averaged over the neurons: ``v4compact choose-images``' default) or at random. A mapping
fitted on each set predicts the held-out half; the table gives the median over neurons of
held-out raw R^2 (against the repeat-averaged responses) for both, per seed.

    python scripts/closed_loop.py --session 210621 --seeds 0 1 2 3 4
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from v4compact.data.session import load_session
from v4compact.metrics import raw_r2
from v4compact.training.ensemble import zscore_responses
from v4compact.training.select import score_images
from v4compact.training.teachers import mapped_committee


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--session", default="210621")
    parser.add_argument("--model", default="backbone:shared/from_ensemble_model/200:layer4")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--bootstrap", type=int, default=8)
    args = parser.parse_args()
    session = load_session(args.session)
    fit, held = session.heldout_split()
    neurons = session.neuron_ids
    images = np.asarray(session.images)
    targets = zscore_responses(session.responses)  # (images, neurons), z-scored
    start_n, total_n = session.num_images // 8, session.num_images // 4
    print(f"session {session.session_id}: {session.num_neurons} neurons, pool {len(fit)} "
          f"(fit half), test {len(held)} (held-out half); start {start_n} random, then "
          f"+{total_n - start_n} by disagreement or at random; model {args.model}, "
          f"committee of {args.bootstrap}")
    print(f"{'seed':>4} {'disagreement':>13} {'random':>8} {'difference':>11} {'s':>6}")
    rows = []
    for seed in args.seeds:
        began = time.perf_counter()
        rng = np.random.default_rng(seed)
        start = rng.choice(fit, start_n, replace=False)
        rest = np.setdiff1d(fit, start)
        members, _ = mapped_committee(args.model, neurons, bootstrap=args.bootstrap, seed=seed,
                                      fit_indices={session.session_id: start})
        chosen, _ = score_images(members(images[rest]), "disagreement", total_n - start_n)
        by_committee = np.concatenate([start, rest[chosen]])
        at_random = np.concatenate([start, rng.choice(rest, total_n - start_n,
                                                      replace=False)])
        scores = []
        for subset in (by_committee, at_random):
            mapped, _ = mapped_committee(args.model, neurons,
                                         fit_indices={session.session_id: subset})
            prediction = mapped(images[held])[0]  # (held, neurons)
            scores.append(float(np.nanmedian(raw_r2(targets[held].T, prediction.T))))
        rows.append(scores)
        print(f"{seed:>4} {scores[0]:>13.4f} {scores[1]:>8.4f} {scores[0] - scores[1]:>+11.4f} "
              f"{time.perf_counter() - began:>6.1f}")
    rows = np.array(rows)
    diff = rows[:, 0] - rows[:, 1]
    print(f"mean {rows[:, 0].mean():>13.4f} {rows[:, 1].mean():>8.4f} {diff.mean():>+11.4f}  "
          f"(disagreement better in {int(np.sum(diff > 0))} of {len(diff)} seeds)")


if __name__ == "__main__":
    main()
