"""Run the fake cluster as a standalone process until SIGINT or SIGTERM.

``python -m maestro_ml_async.testing [--tls] [--port N] [--local-runner]
[--kubeconfig PATH] [--pvc-root CLAIM=PATH]`` prints the kubeconfig path and
context on stdout, one ``key=value`` per line, so scripts and ``kubectl`` can
use it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from ._cluster import FakeCluster


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m maestro_ml_async.testing",
        description="Run a fake Kubernetes API server with simulated controllers.",
    )
    parser.add_argument(
        "--tls", action="store_true", help="serve https (needed by kubectl)"
    )
    parser.add_argument(
        "--port",
        type=int,
        default=0,
        help="TCP port on 127.0.0.1 (default: a free one)",
    )
    parser.add_argument(
        "--local-runner",
        action="store_true",
        help="run pod commands as local subprocesses (the image is ignored)",
    )
    parser.add_argument(
        "--kubeconfig", default=None, help="path of the kubeconfig file to write"
    )
    parser.add_argument(
        "--namespace",
        action="append",
        default=None,
        help="namespace to create at start (repeatable; default: ml-platform)",
    )
    parser.add_argument(
        "--pvc-root",
        action="append",
        default=None,
        metavar="CLAIM=PATH",
        help=(
            "back the PersistentVolumeClaim CLAIM with the local folder PATH, "
            "for model servers that the local runner starts (repeatable)"
        ),
    )
    parser.add_argument("--tick", type=float, default=0.05, help="controller step, s")
    parser.add_argument("--verbose", action="store_true", help="log at DEBUG level")
    args = parser.parse_args(argv)
    args.pvc_roots = {}
    for value in args.pvc_root or []:
        claim, sep, path = value.partition("=")
        if not sep or not claim or not path:
            parser.error(f"invalid --pvc-root {value!r}: expected CLAIM=PATH")
        args.pvc_roots[claim] = path
    return args


async def _serve(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    namespaces = args.namespace or ["ml-platform"]
    cluster = FakeCluster(
        tls=args.tls,
        port=args.port,
        local_runner=args.local_runner,
        kubeconfig_path=args.kubeconfig,
        namespaces=namespaces,
        tick=args.tick,
        pvc_roots=args.pvc_roots,
    )
    async with cluster:
        sys.stdout.write(f"kubeconfig={cluster.kubeconfig_path}\n")
        sys.stdout.write(f"context={cluster.context}\n")
        sys.stdout.write(f"server={cluster.url}\n")
        sys.stdout.flush()
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    """Run the fake cluster until a signal arrives; return the exit status."""
    args = _parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
