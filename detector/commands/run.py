"""``outage-detector run``: the live service."""

from __future__ import annotations

import logging
import signal

from detector.commands.common import add_pipeline_option, pipeline_from_args, setup_logging

log = logging.getLogger("detector")


def add_command(sub) -> None:
    p = sub.add_parser(
        "run",
        help="consume the configured topics and serve scores and alerts",
        description="Consume the pipeline's topics as a consumer-group member, score every record, and "
        "serve /metrics, /healthz, /readyz and /templates. SIGHUP (or a changed model spec or pipeline "
        "file) reloads the model specs and the alerting and incident settings, keeping those in use if "
        "the new ones are invalid. SIGINT or SIGTERM "
        "stop it after a final checkpoint and commit.",
    )
    add_pipeline_option(p)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.set_defaults(func=run)


def install_stop_handlers(stop) -> None:
    def handler(signum, frame):
        log.info("%s received: final checkpoint and commit, then exit", signal.Signals(signum).name)
        stop()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def run(args) -> int:
    from detector.cli import EARLY_HANGUPS
    from detector.config import environment_overrides
    from detector.model_reload import install_sighup
    from detector.service import Service

    setup_logging(args.verbose)
    spec = pipeline_from_args(args).require_inputs()
    overridden = environment_overrides()
    if overridden:
        log.info("set from the environment, over %s: %s", args.pipeline or "the built-in defaults",
                 ", ".join(overridden))
    service = Service(spec, pipeline_path=args.pipeline)
    install_stop_handlers(service.stop)
    install_sighup(service.reloader)
    if EARLY_HANGUPS:
        # The specs may have changed after they were read: the reload asked for is done now.
        log.info("SIGHUP received while starting: reloading the specs")
        service.reloader.request()
    service.run()
    return 0
