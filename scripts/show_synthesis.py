"""Do synthesized images beat every held-out natural image? (issue 5, "what must be shown")

For 10 neurons across the test sessions 190923, 201025 and 210225, run preferred-stimulus
synthesis (maximize and minimize) with each preset, all neurons x starts in one routed batch,
and report the fraction of neurons / starts whose synthesized response exceeds the model's
largest response to every held-out natural image of that neuron's session (for
minimisation: falls below the smallest). Also renders the figure-2a contact sheet of
201025/2 (upstream preset, maximize).

Run:  python scripts/show_synthesis.py --out /tmp/show_synthesis
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from v4compact.data.session import load_session
from v4compact.figures.synthesis import synthesis_figure
from v4compact.models.formats.loaders import load_compact_model
from v4compact.synthesis import synthesize
from v4compact.synthesis.routing import RoutedModels

NEURONS = ["190923/0", "190923/10", "190923/20", "201025/2", "201025/10", "201025/30",
           "201025/60", "210225/5", "210225/20", "210225/40"]


def natural_range(models: dict, data_dir=None) -> dict:
    """Model response range over each neuron's held-out natural images: id -> (min, max)."""
    out, sessions = {}, {}
    for nid, model in models.items():
        sid = nid.split("/")[0]
        if sid not in sessions:
            session = load_session(sid, data_dir=data_dir)
            _, held = session.heldout_split()
            sessions[sid] = np.asarray(session.images[held])
        pred = model.predict(sessions[sid], batch_size=100)
        out[nid] = (float(pred.min()), float(pred.max()))
    return out


def summarize(preset, minimize, steps, seeds, ids, starts, resp, ranges, neurons, seconds):
    """One summary row: how many starts / neurons beat the natural extreme."""
    ref = np.array([ranges[i][0 if minimize else 1] for i in ids])
    beats = resp < ref if minimize else resp > ref
    per_neuron = [bool(beats[[j for j, t in enumerate(ids) if t == nid]].all())
                  for nid in neurons]
    row = {"preset": preset, "direction": "min" if minimize else "max", "steps": steps,
           "starts_per_neuron": seeds, "fraction_starts": float(beats.mean()),
           "fraction_neurons_all_starts": float(np.mean(per_neuron)),
           "median_margin": float(np.median(ref - resp if minimize else resp - ref)),
           "seconds": round(seconds, 1)}
    details = [{"neuron": t, "start": s, "response": float(r), "natural_extreme": float(e)}
               for t, s, r, e in zip(ids, starts, resp, ref, strict=True)]
    return row, details


def rescore(folder: Path, models: dict, ranges: dict, neurons, figure: str) -> dict:
    """Re-evaluate saved PNGs of a run with freshly loaded models (responses only)."""
    import csv

    from PIL import Image

    rows = list(csv.DictReader((folder / "responses.csv").open()))
    prov = json.loads((folder / "provenance.json").read_text())
    ids = [r["target"] for r in rows]
    starts = [int(r["start"]) for r in rows]
    images = np.stack([np.asarray(Image.open(folder / r["file"])) for r in rows])
    resp = np.empty(len(rows), dtype=np.float32)
    for nid in dict.fromkeys(ids):
        keep = [j for j, t in enumerate(ids) if t == nid]
        resp[keep] = models[nid].predict(images[keep])
    minimize = bool(prov.get("minimize"))
    row, details = summarize(prov["preset"]["name"], minimize, prov["steps"],
                             prov["seeds_per_neuron"], ids, starts, resp, ranges, neurons,
                             float("nan"))
    row["rescored_from"] = str(folder)
    (folder / "vs_natural_rescored.json").write_text(json.dumps(details, indent=1))
    if figure and not minimize and "201025/2" in ids:
        from v4compact.figures.synthesis import contact_sheet

        keep = [j for j, t in enumerate(ids) if t == "201025/2"]
        fig = contact_sheet(images[keep], resp[keep], ncols=3,
                            title=f"201025/2 ({row['preset']}, {row['steps']} steps, max)",
                            reference=ranges["201025/2"][1])
        fig.savefig(figure, dpi=110)
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="show_synthesis_out")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=9)
    parser.add_argument("--presets", default="upstream,fourier,upstream_robust")
    parser.add_argument("--compare-seeds", type=int, default=3,
                        help="starts per neuron for the presets other than upstream")
    parser.add_argument("--figure", default="docs/img/fig2a_201025_2.png")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--directions", default="max,min", help="max, min or both")
    parser.add_argument("--rescore", nargs="*", default=None, metavar="RUN_DIR",
                        help="only re-evaluate the PNGs of earlier runs (folders holding "
                        "responses.csv) with freshly loaded models")
    parser.add_argument("--neurons", default=",".join(NEURONS),
                        help="comma-separated neuron ids (default: the 10 above)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    neurons = args.neurons.split(",")
    directions = [d == "min" for d in args.directions.split(",")]
    models = {nid: load_compact_model(*nid.split("/")) for nid in neurons}
    t0 = time.perf_counter()
    ranges = natural_range(models)
    print(f"natural held-out ranges computed in {time.perf_counter() - t0:.0f} s")
    if args.rescore is not None:
        for folder in args.rescore:
            print(json.dumps(rescore(Path(folder), models, ranges, neurons, args.figure)))
        return 0
    routed = RoutedModels(list(models.values()), model_id=f"compact[{len(neurons)} neurons]")
    summary = []
    for preset in args.presets.split(","):
        seeds = args.seeds if preset == "upstream" else args.compare_seeds
        for minimize in directions:
            t0 = time.perf_counter()
            result = synthesize(routed, neurons, seeds=seeds, preset=preset, steps=args.steps,
                                minimize=minimize, seed=0, device=args.device)
            elapsed = time.perf_counter() - t0
            row, details = summarize(preset, minimize, args.steps, seeds, result.target_ids,
                                     result.start_index, result.target_responses, ranges,
                                     neurons, elapsed)
            summary.append(row)
            print(json.dumps(row))
            tag = f"{preset}_{row['direction']}"
            result.save(out / tag)
            (out / tag / "vs_natural.json").write_text(json.dumps(details, indent=1))
            if preset == "upstream" and not minimize and args.figure and "201025/2" in neurons:
                fig = synthesis_figure(result, neuron="201025/2",
                                       reference=ranges["201025/2"][1])
                Path(args.figure).parent.mkdir(parents=True, exist_ok=True)
                fig.savefig(args.figure, dpi=110)
    name = f"summary_{args.presets.replace(',', '+')}_{args.directions.replace(',', '+')}.json"
    (out / name).write_text(json.dumps({"neurons": neurons, "natural_range": ranges,
                                                  "rows": summary}, indent=1))
    print()
    print(f"{'preset':<16}{'dir':<5}{'starts':>7}{'frac starts':>13}{'frac neurons':>14}"
          f"{'median margin':>14}{'s':>8}")
    for r in summary:
        print(f"{r['preset']:<16}{r['direction']:<5}{r['starts_per_neuron']:>7}"
              f"{r['fraction_starts']:>13.3f}{r['fraction_neurons_all_starts']:>14.3f}"
              f"{r['median_margin']:>14.2f}{r['seconds']:>8.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
