"""``v4compact serve`` and ``v4compact site build``: the explorer web page."""

from __future__ import annotations

import argparse


def register(subparsers, parents) -> None:
    """Add ``serve`` and ``site`` (with ``site build``)."""
    serve = subparsers.add_parser(
        "serve",
        parents=parents,
        help="start the explorer web page",
        description="Start the V4 explorer (a web page over the models and data). It binds to "
        "127.0.0.1 by default, so only this computer can open it; run 'v4compact site build' "
        "first so pages load from precomputed pictures and scores.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument("--cache-dir", metavar="DIR", default=None,
                       help="site assets written by 'v4compact site build' (default: the "
                       "per-user cache's 'site' folder)")
    serve.add_argument("--workers", type=int, default=2,
                       help="worker threads for live model work (default 2)")
    serve.add_argument("--queue", type=int, default=16,
                       help="requests allowed to wait for a worker before 'busy' (default 16)")
    serve.add_argument("--time-limit", type=float, default=120.0, metavar="SECONDS",
                       help="per-request time limit of live work (default 120)")
    serve.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    serve.set_defaults(func=_serve)

    site = subparsers.add_parser("site", help="precompute the explorer's assets",
                                 description="Precompute the explorer's assets.")
    sub = site.add_subparsers(dest="site_command", metavar="ACTION")
    build = sub.add_parser(
        "build",
        parents=parents,
        help="precompute pictures, rankings and scores (incremental)",
        description="Precompute, per neuron, the held-out predictions and score, the top and "
        "bottom natural images, and synthesized preferred images; plus the session figures. "
        "Only what is missing or out of date (model file or settings changed) is computed.",
    )
    build.add_argument("--cache-dir", metavar="DIR", default=None,
                       help="output folder (default: the per-user cache's 'site' folder)")
    build.add_argument("--neurons", nargs="+", metavar="ID", default=None,
                       help="neuron ids (201025/10) or session ids (201025); default: all 219")
    build.add_argument("--steps", type=int, default=200, help="synthesis steps (default 200)")
    build.add_argument("--seeds", type=int, default=3,
                       help="preferred images (random starts) per neuron (default 3)")
    build.add_argument("--preset", default="upstream", help="synthesis preset (default upstream)")
    build.add_argument("--heldout-images", type=int, default=None, metavar="N",
                       help="use only the first N held-out photos per neuron (quick builds; "
                       "default: all)")
    build.add_argument("--no-sessions", action="store_true", help="skip the session figures")
    build.add_argument("--no-stats", action="store_true",
                       help="skip the population statistics (used by 'Try your image')")
    build.add_argument("--force", action="store_true", help="rebuild even what is current")
    build.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    build.set_defaults(func=_build)
    site.set_defaults(func=lambda args: (site.print_help(), 2)[1])


def _check_positive(name: str, value: int | float) -> None:
    from ..errors import InvalidInputError

    if value < 1:
        raise InvalidInputError(f"{name} must be at least 1, got {value}")


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from ..web.app import create_app

    _check_positive("--workers", args.workers)
    app = create_app(
        data_dir=args.data_dir,
        cache_dir=args.cache_dir,
        max_workers=args.workers,
        max_queue=max(0, args.queue),
        time_limit_s=args.time_limit,
        device=args.device,
        preload=True,
    )
    print(f"V4 explorer on http://{args.host}:{args.port}/  (Ctrl-C stops it)")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def _build(args: argparse.Namespace) -> int:
    from ..synthesis import get_preset
    from ..web.assets import SiteSettings, build_site
    from ..web.state import default_cache_dir

    _check_positive("--steps", args.steps)
    _check_positive("--seeds", args.seeds)
    get_preset(args.preset)  # unknown names fail here, with the list of valid ones
    cache_dir = args.cache_dir or default_cache_dir()
    if args.heldout_images is not None:
        _check_positive("--heldout-images", args.heldout_images)
    settings = SiteSettings(
        steps=args.steps, seeds=args.seeds, preset=args.preset,
        max_heldout_images=args.heldout_images,
    )
    report = build_site(
        cache_dir,
        data_dir=args.data_dir,
        neurons=args.neurons,
        settings=settings,
        device=args.device,
        sessions=not args.no_sessions,
        population=not args.no_stats,
        force=args.force,
    )
    for what, message in report.failed.items():
        print(f"warning: {what}: {message}")
    print(f"{report.summary()} -> {cache_dir}")
    return 1 if report.failed and not (report.built or report.skipped) else 0
