"""Screenshots and first-view sizes of an exported static site (docs/img/website_*.png).

Serves the export with a plain ``python -m http.server`` on loopback, drives Debian's headless
Chromium through Playwright over every page at 1280 px and at 375 px (a phone), saves one PNG
per page and width, and prints what the first view of the gallery transferred and how long
the pages took.

    v4compact site export --out site/
    .venv/bin/python scripts/website_screenshots.py site/ --out docs/img
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from v4compact.web.server import CHROMIUM, launch_chromium


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site", type=Path, help="the folder 'v4compact site export' wrote")
    parser.add_argument("--out", type=Path, default=Path("docs/img"), help="output folder")
    parser.add_argument("--neuron", default="201025/10", help="the neuron page to show")
    parser.add_argument("--photo", type=Path, default=None,
                        help="a photo for 'Try your image' (default: one of session 210225)")
    parser.add_argument("--chromium", default=CHROMIUM)
    args = parser.parse_args(argv)

    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    photo = args.photo
    if photo is None:
        from v4compact import config

        zip_path = config.data_dir() / "data_V4_responses/images/images_210225.zip"
        photo = Path(tempfile.mkdtemp(prefix="v4-website-")) / "photo.jpg"
        with zipfile.ZipFile(zip_path) as zf:
            photo.write_bytes(zf.read(sorted(n for n in zf.namelist()
                                             if n.endswith(".jpg"))[21]))
    made = (args.site / "data" / "made.json").read_text().strip() not in ("", "[]")
    pages = [
        ("gallery", "", "#gallery-cards .card img", None),
        ("neuron", f"#/neuron/{args.neuron}", "#network canvas.kernel", "ablate"),
        ("synthesize", f"#/synthesize?neurons={args.neuron}&steps=100&seed=1", "#syn-start",
         "synthesize"),
        ("try", "#/try", "#try-file", "photo"),
        ("sessions", "#/sessions", "#sessions-table tbody tr", None),
        ("session", "#/session/201025", "img.figure", None),
        ("tutorials", "#/tutorials", "#tutorial-list a", None),
        ("tutorial", "#/tutorial/02_predict_and_evaluate", ".nb-cell", None),
        ("about", "#/about", "h1", None),
    ]
    if made:
        import json

        first = json.loads((args.site / "data" / "made.json").read_text())[0]["neuron_id"]
        pages.append(("made", f"#/made/{first}", "#network canvas.kernel", None))
    from v4compact.web.server import serve_folder

    with serve_folder(args.site) as origin, sync_playwright() as playwright:
        url = origin + "/"
        browser = launch_chromium(playwright, args.chromium)
        for width, height, suffix in ((1280, 900, ""), (375, 740, "_phone")):
            context = browser.new_context(viewport={"width": width, "height": height})
            page = context.new_page()
            page.set_default_timeout(300_000)
            transferred: list[int] = []
            page.on("requestfinished", lambda r, t=transferred: t.append(
                r.sizes()["responseBodySize"]))
            for name, path, ready, action in pages:
                transferred.clear()
                started = time.perf_counter()
                page.goto(url + path)
                page.wait_for_selector(ready)
                page.wait_for_load_state("networkidle")
                seconds = time.perf_counter() - started
                first_view = sum(transferred)
                if action == "ablate":
                    page.locator('canvas.kernel[data-layer="layer3"][data-index="0"]').click()
                    page.wait_for_selector("#filter-panel .ablation-text")
                    page.wait_for_selector("#filter-panel canvas.mapimg")
                elif action == "synthesize":
                    page.click("#syn-start")
                    page.wait_for_selector("#syn-results .result-image")
                elif action == "photo":
                    page.set_input_files("#try-file", str(photo))
                    page.wait_for_selector("#response-bars .bar")
                target = args.out / f"website_{name}{suffix}.png"
                page.screenshot(path=str(target),
                                full_page=name in ("neuron", "synthesize", "session", "made"))
                print(f"{name:<11} {width:>5} px  ready {seconds:5.2f} s  first view "
                      f"{first_view / 1e6:5.2f} MB" + (f", then {action} "
                      f"{(sum(transferred) - first_view) / 1e6:5.2f} MB" if action else "")
                      + f"  -> {target}")
            context.close()
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
