"""``v4compact serve`` and ``v4compact site build``: the explorer web page."""

from __future__ import annotations

import argparse

from .checks import check_positive, output_dir


class SiteDefaults:
    """Synthesis defaults shared by 'serve' and 'site build' (same pages either way); kept
    here so the command line starts without importing the web package."""

    steps = 100
    seeds = 3


def register(subparsers, parents) -> None:
    """Add ``serve`` and ``site`` (with ``site build``)."""
    serve = subparsers.add_parser(
        "serve",
        parents=parents,
        help="start the explorer web page",
        description="Start the V4 explorer (a web page over the models and data). It binds to "
        "127.0.0.1 by default, so only this computer can open it. It answers at once and "
        "computes the neuron pages that are not in --cache-dir yet in the background (a "
        "visited neuron first), writing them where 'v4compact site build' would. It answers "
        "only to the "
        "host names 127.0.0.1, localhost and [::1] (and the --host address), and refuses "
        "requests sent by pages of other web sites.",
        epilog="To serve it on a network on purpose: v4compact serve --host 0.0.0.0 "
        "--allow-host NAME, where NAME is the name or address the other computers type "
        "(e.g. --allow-host labpc.local --allow-host 192.168.1.20).",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                       help="also answer to this host name or address (repeatable); needed "
                       "to serve on a network on purpose")
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
    serve.add_argument("--made", action="append", default=[], metavar="RUN",
                       help="also show the models made by 'make-compact --out RUN' "
                       "(repeatable): gallery cards with dataset and area, and a page each")
    serve.add_argument("--no-build", action="store_true",
                       help="serve only the pages already in --cache-dir (no background build)")
    serve.add_argument("--site-steps", type=int, default=SiteDefaults.steps, metavar="N",
                       help=f"synthesis steps of the pages it builds (default {SiteDefaults.steps}"
                       ", as 'site build')")
    serve.add_argument("--site-seeds", type=int, default=SiteDefaults.seeds, metavar="N",
                       help="preferred images per neuron of the pages it builds (default "
                       f"{SiteDefaults.seeds})")
    serve.add_argument("--site-heldout-images", type=int, default=None, metavar="N",
                       help="draw and rank only the first N held-out photos on the pages it "
                       "builds (quick test servers; default: all)")
    serve.set_defaults(func=_serve)

    site = subparsers.add_parser("site", help="precompute the explorer's assets",
                                 description="Precompute the explorer's assets.")
    sub = site.add_subparsers(dest="site_command", metavar="ACTION")
    build = sub.add_parser(
        "build",
        parents=parents,
        help="precompute pictures, rankings and scores (incremental)",
        description="Precompute, per neuron, the held-out predictions and score, the top and "
        "bottom natural images, and synthesized preferred images; plus the figures of their "
        "sessions. Neurons are computed session by session (one model pass per session, "
        "synthesis in batches); only what is missing or out of date (model file or settings "
        "changed) is computed, and a build stopped at any point resumes where it stopped. "
        "Prints the time of each stage. 'v4compact serve' builds the same pages in the "
        "background.",
    )
    build.add_argument("--cache-dir", metavar="DIR", default=None,
                       help="output folder (default: the per-user cache's 'site' folder)")
    build.add_argument("--neurons", nargs="+", metavar="ID", default=None,
                       help="neuron ids (201025/10) or session ids (201025); default: all 219")
    build.add_argument("--steps", type=int, default=SiteDefaults.steps,
                       help=f"synthesis steps (default {SiteDefaults.steps})")
    build.add_argument("--seeds", type=int, default=SiteDefaults.seeds,
                       help=f"preferred images (random starts) per neuron (default "
                       f"{SiteDefaults.seeds})")
    build.add_argument("--preset", default="upstream", help="synthesis preset (default upstream)")
    build.add_argument("--heldout-images", type=int, default=None, metavar="N",
                       help="draw and rank only the first N held-out photos per neuron (quick "
                       "builds; default: all; the score always uses all of them)")
    build.add_argument("--no-sessions", action="store_true",
                       help="skip the session figures (the server draws each when first asked)")
    build.add_argument("--no-stats", action="store_true",
                       help="skip the population statistics (used by 'Try your image')")
    build.add_argument("--force", action="store_true", help="rebuild even what is current")
    build.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    build.set_defaults(func=_build)
    export = sub.add_parser(
        "export",
        parents=parents,
        help="write the explorer as a static website (models run in the visitor's browser)",
        description="Write a self-contained static website: the explorer's pages, the models' "
        "weights and the precomputed pictures and scores. Any static file server serves it "
        "as it is (python -m http.server, GitHub Pages under a sub-path, a USB stick); the "
        "visitor's browser runs the models (predictions, activation maps, filter ablation, "
        "synthesis) with the TensorFlow.js files the export includes, and no request leaves "
        "the site. Neurons not built in --cache-dir yet are built first (as 'site build').",
        epilog="Check it locally: python -m http.server --directory DIR, then open "
        "http://127.0.0.1:8000/ (docs/website.md: publishing on GitHub Pages).",
    )
    export.add_argument("--out", required=True, metavar="DIR", help="the site's folder")
    export.add_argument("--neurons", nargs="+", metavar="ID", default=None,
                        help="neuron ids (201025/10) or session ids (201025); default: all 219")
    export.add_argument("--sessions", nargs="+", metavar="SESSION", default=None,
                        help="export every neuron of these sessions")
    export.add_argument("--made", action="append", default=[], metavar="RUN",
                        help="also the models made by 'make-compact --out RUN' (repeatable)")
    export.add_argument("--cache-dir", metavar="DIR", default=None,
                        help="the asset cache of 'site build' / 'serve' (default: theirs)")
    export.add_argument("--no-build", action="store_true",
                        help="export what the cache holds; unbuilt neurons have no pictures")
    export.add_argument("--repo-url", default=None, metavar="URL",
                        help="the public GitHub repository for 'Open in Colab' links (default: "
                        "$V4COMPACT_REPO_URL / the package's setting; none: no Colab links)")
    export.add_argument("--steps", type=int, default=SiteDefaults.steps,
                        help="synthesis steps of the neurons it builds")
    export.add_argument("--seeds", type=int, default=SiteDefaults.seeds,
                        help="preferred images per neuron of the neurons it builds")
    export.set_defaults(func=_export)
    site.set_defaults(func=lambda args: (site.print_help(), 2)[1])


#: Addresses that mean "every interface" when bound.
_WILDCARD_HOSTS = ("0.0.0.0", "::", "")


def _check_serve_options(args: argparse.Namespace) -> None:
    """Refuse option values the server cannot work with, before anything is loaded."""
    from ..errors import InvalidInputError

    check_positive("--workers", args.workers)
    if not 1 <= args.port <= 65535:
        raise InvalidInputError(f"--port must be between 1 and 65535, got {args.port}")
    if args.queue < 0:
        raise InvalidInputError(f"--queue must be 0 or more, got {args.queue}")
    if not args.time_limit > 0:  # also refuses nan
        raise InvalidInputError(
            f"--time-limit must be a positive number of seconds, got {args.time_limit}"
        )
    if args.made:
        from ..training.made import find_made_models

        find_made_models(args.made)  # a folder that is not a finished run fails here


def bind_socket(host: str, port: int):
    """A listening TCP socket on ``host:port``, bound before the app is built.

    Raises:
        InvalidInputError: the address cannot be used (taken, not this computer's, or a
            privileged port), with the option to change.
    """
    import socket

    from ..errors import InvalidInputError

    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror as err:
        raise InvalidInputError(
            f"--host {host}: unknown address ({err.strerror}); use 127.0.0.1 or an address "
            "of this computer"
        ) from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as err:
        sock.close()
        raise InvalidInputError(
            f"cannot serve on {host}:{port} ({err.strerror}); choose another --port or --host"
        ) from None
    sock.set_inheritable(True)
    return sock


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from ..web.app import create_app

    _check_serve_options(args)
    settings = None
    if not args.no_build:
        settings = _site_settings(args.site_steps, args.site_seeds, "upstream",
                                  args.site_heldout_images, prefix="--site-")
    sock = bind_socket(args.host, args.port)
    allowed = list(args.allow_host)
    if args.host not in _WILDCARD_HOSTS:
        allowed.append(args.host)
    elif not args.allow_host:
        print("note: serving on every network interface, but answering only to "
              "127.0.0.1/localhost; add --allow-host NAME for the name other computers type")
    app = create_app(
        data_dir=args.data_dir,
        cache_dir=args.cache_dir,
        max_workers=args.workers,
        max_queue=args.queue,
        time_limit_s=args.time_limit,
        device=args.device,
        preload=True,
        allowed_hosts=allowed,
        build=not args.no_build,
        site_settings=settings,
        made=args.made,
    )
    shown = "127.0.0.1" if args.host in _WILDCARD_HOSTS else args.host
    print(f"V4 explorer on http://{shown}:{args.port}/  (Ctrl-C stops it)")
    config = uvicorn.Config(app, log_level="warning")
    uvicorn.Server(config).run(sockets=[sock])
    return 0


def _site_settings(steps, seeds, preset, heldout_images, prefix="--"):
    """Checked :class:`~v4compact.web.assets.SiteSettings` (errors name the option)."""
    from ..synthesis import get_preset
    from ..web.assets import SiteSettings

    check_positive(f"{prefix}steps", steps)
    check_positive(f"{prefix}seeds", seeds)
    get_preset(preset)  # unknown names fail here, with the list of valid ones
    if heldout_images is not None:
        check_positive(f"{prefix}heldout-images", heldout_images)
    return SiteSettings(steps=steps, seeds=seeds, preset=preset,
                        max_heldout_images=heldout_images)


def _build(args: argparse.Namespace) -> int:
    from ..web.sitebuild import StageTimes, build_site
    from ..web.state import default_cache_dir

    settings = _site_settings(args.steps, args.seeds, args.preset, args.heldout_images)
    cache_dir = output_dir(args.cache_dir or default_cache_dir(), "--cache-dir")
    times = StageTimes()
    report = build_site(
        cache_dir,
        data_dir=args.data_dir,
        neurons=args.neurons,
        settings=settings,
        device=args.device,
        sessions=not args.no_sessions,
        population=not args.no_stats,
        force=args.force,
        times=times,
    )
    for what, message in report.failed.items():
        print(f"warning: {what}: {message}")
    print(f"{report.summary()} -> {cache_dir}")
    print(f"time per stage: {times.line()}")
    return 1 if report.failed and not (report.built or report.skipped) else 0


def _export(args: argparse.Namespace) -> int:
    from ..web.siteexport import export_site

    settings = _site_settings(args.steps, args.seeds, "upstream", None)
    export_site(args.out, data_dir=args.data_dir, cache_dir=args.cache_dir,
                neurons=args.neurons, sessions=args.sessions, made=args.made,
                repo_url=args.repo_url, build=not args.no_build, settings=settings)
    return 0
