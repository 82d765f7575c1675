"""How long import and export take on this machine (issue 21): prints a table.

Rows: exporting session 201025 (89 neurons, 1,200 images) to NWB and importing it back
(responses stored in the file); writing 210325 (50 neurons, 640 images, up to 10 repeats)
as spike times in each raw layout and importing it (spikes counted in the window). Each row
is the median of ``--repeats`` runs, all in one process, one after the other.

    python benchmarks/bench_import.py
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path


def _timed(function, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from v4compact import export_session, import_session, load_session
    from v4compact.ingest.rawform import LAYOUTS, write_image_folder, write_spike_nwb

    warnings.simplefilter("ignore")
    tmp = Path(tempfile.mkdtemp(prefix="bench-import-"))
    rows = []
    seconds, path = _timed(lambda: export_session(201025, tmp / "201025.nwb"), args.repeats)
    rows.append(("export 201025 -> NWB (89 x 1200, averaged)", seconds,
                 path.stat().st_size / 1e6))
    n = iter(range(1000))
    seconds, _ = _timed(lambda: import_session(path, f"bench:a{next(n)}", out=tmp / "ds"),
                        args.repeats)
    rows.append(("import it back (response series)", seconds, None))
    session = load_session(210325)
    images = write_image_folder(session, tmp / "images")
    for layout in LAYOUTS:
        file = tmp / f"{layout}.nwb"
        write_spike_nwb(session, file, layout=layout)
        extra = {"images": images} if layout == "external" else {}
        seconds, _ = _timed(lambda file=file, extra=extra, layout=layout: import_session(
            file, f"bench:{layout}{next(n)}", out=tmp / "ds", **extra), args.repeats)
        rows.append((f"import 210325 spike times ({layout})", seconds,
                     file.stat().st_size / 1e6))
    print(f"{'step':<46} {'seconds':>8} {'file MB':>8}")
    for name, seconds, size in rows:
        print(f"{name:<46} {seconds:>8.2f} {'' if size is None else f'{size:.1f}':>8}")


if __name__ == "__main__":
    main()
