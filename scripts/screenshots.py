"""Take the explorer screenshots of the docs (docs/img/explorer_*.png).

Builds (or reuses) a site cache, starts the explorer on 127.0.0.1, drives Debian's headless
chromium through each page with Playwright, and saves one PNG per page.

    .venv/bin/python scripts/screenshots.py                    # quick build of 24 neurons
    .venv/bin/python scripts/screenshots.py --cache-dir ~/.cache/v4compact/site
"""

from __future__ import annotations

import argparse
import os
import sys
import zipfile
from pathlib import Path

from v4compact.web.server import CHROMIUM, launch_chromium

REPO = Path(__file__).resolve().parents[1]
DEFAULT_NEURONS = ["201025/10", "190923/0", "210225/5", "201025/2", "211022/3"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", default=str(REPO / "out" / "site_screenshots"),
                        help="site cache (built incrementally if needed)")
    parser.add_argument("--out", default=str(REPO / "docs" / "img"), help="output folder")
    parser.add_argument("--steps", type=int, default=100, help="synthesis steps of the build")
    parser.add_argument("--data-dir", default=os.environ.get("V4COMPACT_DATA"))
    parser.add_argument("--chromium", default=CHROMIUM)
    parser.add_argument("--no-build", action="store_true", help="use the cache as it is")
    parser.add_argument("--only", nargs="+", default=None, metavar="PAGE",
                        help="take only these screenshots (gallery neuron synthesize try "
                        "sessions session tutorial made)")
    parser.add_argument("--made", action="append", default=[], metavar="RUN",
                        help="a make-compact run folder: its models in the gallery and the "
                        "'made' screenshots (its imported session must be findable)")
    args = parser.parse_args(argv)

    from playwright.sync_api import sync_playwright

    from v4compact.web.app import create_app
    from v4compact.web.assets import SiteSettings
    from v4compact.web.server import running_server
    from v4compact.web.sitebuild import build_site

    data_dir = Path(args.data_dir) if args.data_dir else None
    if not args.no_build:
        report = build_site(args.cache_dir, data_dir=data_dir, neurons=DEFAULT_NEURONS,
                            settings=SiteSettings(steps=args.steps, seeds=3, stats_images=10),
                            sessions=False)
        print(report.summary())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    photo = Path(args.cache_dir) / "upload_example.jpg"
    from v4compact import config

    images_zip = config.data_dir(data_dir) / "data_V4_responses/images/images_210225.zip"
    with zipfile.ZipFile(images_zip) as zf:
        photo.write_bytes(zf.read(sorted(n for n in zf.namelist() if n.endswith(".jpg"))[21]))

    app = create_app(data_dir=data_dir, cache_dir=args.cache_dir, made=args.made)
    with running_server(app) as url, sync_playwright() as playwright:
        browser = launch_chromium(playwright, args.chromium)
        page = browser.new_page(viewport={"width": 1280, "height": 900}, base_url=url)
        page.set_default_timeout(180_000)

        def shot(name: str, full_page: bool = False) -> None:
            path = out / f"explorer_{name}.png"
            page.screenshot(path=str(path), full_page=full_page)
            print(f"wrote {path}")

        def gallery() -> None:
            page.goto("/")
            page.wait_for_selector("#gallery-cards .card img")
            page.wait_for_load_state("networkidle")
            shot("gallery")

        def neuron() -> None:
            page.goto("/#/neuron/201025/10")
            page.wait_for_selector("#network canvas.kernel")
            page.locator('canvas.kernel[data-layer="layer3"][data-index="2"]').click()
            page.wait_for_selector("#filter-panel .ablation-text")
            page.wait_for_load_state("networkidle")
            shot("neuron", full_page=True)

        def synthesize() -> None:
            page.goto("/#/synthesize?neurons=201025/10&steps=120&seed=1")
            page.click("#syn-start")
            page.wait_for_selector("#syn-results .result-image")
            shot("synthesize", full_page=True)

        def try_image() -> None:
            page.goto("/#/try")
            page.set_input_files("#try-file", str(photo))
            page.wait_for_selector("#response-bars .bar")
            shot("try")

        def sessions() -> None:
            page.goto("/#/sessions")
            page.wait_for_selector("#sessions-table tbody tr")
            shot("sessions")

        def session() -> None:
            page.goto("/#/session/201025")
            page.wait_for_selector("img.figure")
            page.wait_for_function("() => document.querySelector('img.figure').complete")
            shot("session", full_page=True)

        def tutorial() -> None:
            page.goto("/#/tutorial/02_predict_and_evaluate")
            page.wait_for_selector(".nb-cell")
            shot("tutorial")

        def made() -> None:
            from v4compact.training.made import find_made_models

            first = next(iter(find_made_models(args.made).values()))
            page.goto(f"/#/?dataset={first.dataset}")
            page.wait_for_selector("#gallery-cards .card.made")
            shot("made_gallery")
            page.goto(f"/#/made/{first.neuron_id}")
            page.wait_for_selector("#network canvas.kernel")
            page.wait_for_selector("#scatter svg circle")
            shot("made", full_page=True)

        steps = {"gallery": gallery, "neuron": neuron, "synthesize": synthesize,
                 "try": try_image, "sessions": sessions, "session": session,
                 "tutorial": tutorial, "made": made if args.made else None}
        for name, take in steps.items():
            if take is not None and (args.only is None or name in args.only):
                take()
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
