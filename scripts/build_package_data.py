"""Build the package's shipped data tables from a copy of the release.

Writes
  src/v4compact/data/sessions.csv   the 50-session catalogue (facts measured from the files)
  src/v4compact/data/registry.tsv   every released file: path, git blob SHA-1, size, SHA-256

Usage: python scripts/build_package_data.py ../shared/v4data
The release is pinned to one commit (RELEASE_COMMIT in v4compact.data.registry).
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "src" / "v4compact" / "data"


def main(source: str) -> None:
    src = Path(source)
    with open(src / "sessions.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    fields = ["session_id", "animal", "split", "num_neurons", "num_images", "median_repeats",
              "image_types"]
    with open(OUT / "sessions.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row[k] for k in fields})
    with open(src / "release_manifest.tsv", newline="") as fh:
        manifest = list(csv.DictReader(fh, delimiter="\t"))
    with open(OUT / "registry.tsv", "w") as fh:
        fh.write("path\tgit_blob_sha1\tsize_bytes\tsha256\n")
        for row in sorted(manifest, key=lambda r: r["path"]):
            fh.write(f"{row['path']}\t{row['git_blob_sha1']}\t{row['size_bytes']}\t{row['sha256']}\n")
    print(f"wrote {len(rows)} sessions and {len(manifest)} registry entries to {OUT}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/v4data")
