"""Start a real local MLflow tracking server for tests and demos.

The server runs ``mlflow server`` from the current Python environment with a
SQLite store and a proxied artifact root under one folder, on 127.0.0.1. It is
started with one uvicorn worker and without MLflow's job runner, which takes it
from about 15 processes and 2.9 GB to 2 processes and about 480 MB (MLflow 3.17,
measured on a 2-core machine). This module never imports `mlflow` itself.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

__all__ = ["LocalMlflowServer", "free_port"]


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalMlflowServer:
    """A local ``mlflow server`` process, as a context manager.

    Args:
        root: Folder for ``mlflow.db`` and ``artifacts/``; a temporary folder
            (removed on stop) when None.
        port: TCP port; a free one when None.
        serve_artifacts: Run the artifact proxy (``--serve-artifacts``).
        startup_timeout: Seconds to wait for ``/health``.
    """

    def __init__(
        self,
        root: str | Path | None = None,
        *,
        port: int | None = None,
        serve_artifacts: bool = True,
        startup_timeout: float = 90.0,
    ) -> None:
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        if root is None:
            self._tempdir = tempfile.TemporaryDirectory(prefix="maestro-mlflow-")
            root = self._tempdir.name
        self.root = Path(root).resolve()
        self.port = port or free_port()
        self.serve_artifacts = serve_artifacts
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL of the server."""
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        """The command line that starts the server."""
        self.root.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{self.root / 'mlflow.db'}",
        ]
        if self.serve_artifacts:
            command += [
                "--serve-artifacts",
                "--artifacts-destination",
                str(self.root / "artifacts"),
            ]
        else:
            command += ["--no-serve-artifacts"]
        return command

    def start(self) -> LocalMlflowServer:
        """Start the server and wait until ``/health`` returns 200."""
        environment = dict(os.environ)
        environment["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
        command = self.command()
        log = open(self.root / "server.log", "wb")
        self.process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environment,
            start_new_session=True,
        )
        log.close()
        try:
            self._wait_until_healthy()
        except BaseException:
            # An interrupt or a failed start must not leave the server behind.
            self.stop()
            raise
        return self

    def _wait_until_healthy(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"mlflow server exited with code {self.process.returncode}; "
                    f"see {self.root / 'server.log'}"
                )
            if _healthy(self.url):
                return
            time.sleep(0.2)
        raise TimeoutError(
            f"mlflow server did not respond to /health within {self.startup_timeout} s"
        )

    def stop(self) -> None:
        """Stop the server's process group by its PID, then clean up."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=15)
        if self._tempdir is not None:
            self._tempdir.cleanup()
            self._tempdir = None

    def __enter__(self) -> LocalMlflowServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/health", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def main(argv: list[str] | None = None) -> None:
    """Run a local server in the foreground until interrupted."""
    parser = argparse.ArgumentParser(description="Run a local MLflow server.")
    parser.add_argument("--root", default=None, help="data folder (default: temp)")
    parser.add_argument("--port", type=int, default=None, help="TCP port")
    args = parser.parse_args(argv)
    # SIGTERM must stop the server too, not orphan it: turn it into the same
    # KeyboardInterrupt that Ctrl-C raises, so the context manager cleans up.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        with LocalMlflowServer(args.root, port=args.port) as server:
            sys.stdout.write(f"MLflow server at {server.url} (data in {server.root})\n")
            sys.stdout.flush()
            assert server.process is not None
            server.process.wait()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
