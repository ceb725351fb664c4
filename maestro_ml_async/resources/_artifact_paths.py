"""Artifact path checks: nothing may escape the run's root or the target folder."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from .._exceptions import NotSupportedByServerException, ValidationException

__all__ = [
    "PROXY_PREFIX",
    "check_download_targets",
    "check_local_path",
    "check_run_id",
    "check_upload_path",
    "collect_upload_files",
    "join_artifact_path",
    "listing_drops_start",
    "proxy_path",
    "proxy_root",
    "safe_artifact_path",
    "safe_local_target",
]

PROXY_PREFIX = "/api/2.0/mlflow-artifacts/artifacts"
_PROXY_SCHEME = "mlflow-artifacts"


def safe_artifact_path(path: str | None, *, what: str = "artifact path") -> str:
    """Return a normalised relative artifact path ("" for the root).

    Raises:
        ValidationException: The path is absolute, has a ``..`` segment, a
            backslash, a drive letter or a NUL character.
    """
    if path is None:
        return ""
    if not isinstance(path, str):
        raise ValidationException(f"{what} must be a string, got {type(path).__name__}")
    if "\x00" in path or "\\" in path:
        raise ValidationException(
            f"{what} {path!r} is invalid: NUL and backslash are not allowed"
        )
    if path.startswith("/") or (len(path) > 1 and path[1] == ":"):
        raise ValidationException(
            f"{what} {path!r} is absolute; use a path relative to the run's root"
        )
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ValidationException(
            f"{what} {path!r} contains '..', which would leave the run's artifacts"
        )
    return "/".join(parts)


def check_run_id(run_id: object) -> str:
    """Check a run id: a non-empty string."""
    if not isinstance(run_id, str) or not run_id.strip():
        raise ValidationException(
            f"run_id must be a non-empty string, got {_describe(run_id)}"
        )
    return run_id.strip()


def check_local_path(path: object, *, what: str) -> Path:
    """Check a local file or folder argument: a string or an `os.PathLike`."""
    if isinstance(path, str | os.PathLike) and not isinstance(path, bytes):
        text = os.fspath(path)
        if isinstance(text, str) and text:
            return Path(text)
    raise ValidationException(
        f"{what} must be a non-empty path (str or os.PathLike), got {_describe(path)}"
    )


def check_download_targets(dst_dir: Path, targets: list[Path]) -> None:
    """Reject local paths in the way of a download before anything is sent.

    `dst_dir` must be a folder or not exist yet. Each target's parents below
    `dst_dir` must be folders or missing, and a target must not be a folder,
    because a file cannot replace it.
    """
    if dst_dir.exists() and not dst_dir.is_dir():
        raise ValidationException(
            f"dst_dir {str(dst_dir)!r} is not a directory; pass a folder path"
        )
    base = dst_dir.resolve()
    for target in targets:
        if target.is_dir():
            raise ValidationException(
                f"a folder is in the way of downloaded file {str(target)!r}; "
                "remove it or choose another dst_dir"
            )
        for parent in target.parents:
            if parent == base or base not in parent.parents:
                break
            if parent.exists() and not parent.is_dir():
                raise ValidationException(
                    f"a file is in the way of downloaded folder {str(parent)!r}; "
                    "remove it or choose another dst_dir"
                )


def _describe(value: object) -> str:
    if isinstance(value, str):
        return repr(value)
    return type(value).__name__


def check_upload_path(relative: str) -> str:
    """Check the artifact path of a file to upload and return it.

    MLflow's artifact proxy (3.17) URL-decodes a path again before storing it,
    so ``a%20b`` is stored as ``a b`` and ``x%23`` as ``x``, and it rejects a
    path with ``#`` with 400 "Invalid path". Such names would not round-trip,
    and checking them first keeps a directory upload from failing after some
    of its files were sent.

    A backslash is legal in a POSIX file name and the proxy stores it, but
    `safe_artifact_path` rejects it in server listings (it is a separator on
    Windows), so an uploaded name with one would make its folder unlistable.
    """
    if "\\" in relative:
        raise ValidationException(
            f"artifact path {relative!r} contains a backslash, which artifact "
            "listings and downloads reject; rename the file"
        )
    if "#" in relative:
        raise ValidationException(
            f"artifact path {relative!r} contains '#', which MLflow's artifact "
            "proxy rejects; rename the file"
        )
    decoded = unquote(relative)
    if decoded != relative:
        raise ValidationException(
            f"artifact path {relative!r} contains a percent-escape, which MLflow's "
            f"artifact proxy decodes, so it would be stored as {decoded!r}; "
            "rename the file"
        )
    _check_upload_segments(relative)
    return relative


def _check_upload_segments(relative: str) -> None:
    """Reject control characters and whitespace at either end of a segment.

    MLflow 3.17 parses a listed path with `urllib.parse.urlparse`, which drops
    spaces and control characters at the start and tab, CR and LF anywhere.
    So ``" lead"`` is listed as ``lead`` (nothing) and ``"   "`` as the root.
    The proxy drops a tab from an uploaded name and rejects a newline. A
    trailing space round-trips on POSIX, but Windows cannot create such a
    file, so the whole class is rejected.
    """
    control = [char for char in relative if ord(char) < 0x20 or ord(char) == 0x7F]
    if control:
        raise ValidationException(
            f"artifact path {relative!r} contains the control character "
            f"{control[0]!r}, which MLflow's artifact proxy drops or rejects; "
            "rename the file"
        )
    for segment in relative.split("/"):
        if segment != segment.strip():
            raise ValidationException(
                f"artifact path {relative!r} has a segment {segment!r} that starts "
                "or ends with whitespace, which MLflow's artifact listing drops; "
                "rename the file or the folder"
            )


def listing_drops_start(relative: str) -> bool:
    """Check whether MLflow's ``artifacts/list`` would list another folder.

    The server (3.17) parses the ``path`` parameter with
    `urllib.parse.urlparse`, which strips spaces and C0 control characters
    from its start, so ``" lead"`` is listed as ``lead`` and ``"   "`` as the
    root. The proxy's own listing takes the path after the run's root, where
    nothing is stripped.

    Raises:
        ValidationException: The path contains a tab, CR or LF, which the
            parser removes anywhere, so no endpoint lists that folder.
    """
    for char in "\t\r\n":
        if char in relative:
            raise ValidationException(
                f"artifact folder {relative!r} contains {char!r}, which MLflow's "
                "artifact listing removes, so the folder cannot be listed"
            )
    return bool(relative) and ord(relative[0]) <= 0x20


def join_artifact_path(*parts: str) -> str:
    """Join relative artifact paths with ``/``, skipping empty ones."""
    return "/".join(part for part in parts if part)


def proxy_root(artifact_uri: str) -> str:
    """Map a run's ``mlflow-artifacts:/<exp>/<run>/artifacts`` URI to its path
    relative to the proxy prefix.

    Raises:
        NotSupportedByServerException: The run's artifacts are not served by
            the tracking server's artifact proxy.
    """
    parts = urlsplit(artifact_uri)
    if parts.scheme != _PROXY_SCHEME:
        raise NotSupportedByServerException(
            f"the run's artifact location {artifact_uri!r} is not served through "
            "the server's artifact proxy; start the server with --serve-artifacts "
            "so that runs store artifacts under mlflow-artifacts:/",
            error_code="ARTIFACT_PROXY_UNAVAILABLE",
        )
    return parts.path.strip("/")


def proxy_path(root: str, relative: str) -> str:
    """Return the URL path of an artifact under the proxy, each segment URL-quoted."""
    segments = [segment for segment in f"{root}/{relative}".split("/") if segment]
    return (
        PROXY_PREFIX + "/" + "/".join(quote(segment, safe="") for segment in segments)
    )


def safe_local_target(dst_dir: Path, relative: str) -> Path:
    """Return ``dst_dir / relative`` after checking it stays inside `dst_dir`.

    The check resolves symlinks, so a link inside `dst_dir` that points
    elsewhere is rejected too.
    """
    checked = safe_artifact_path(relative, what="artifact path from the server")
    if not checked:
        raise ValidationException("an artifact path from the server is empty")
    base = dst_dir.resolve()
    target = (base / checked).resolve()
    if target != base and base not in target.parents:
        raise ValidationException(
            f"artifact {relative!r} would be written outside {str(dst_dir)!r}"
        )
    return base / checked


def collect_upload_files(
    local_dir: Path, *, skip: Callable[[str], bool] | None = None
) -> list[tuple[Path, str]]:
    """List the files under a folder as (local path, relative posix path).

    Symlinks are followed only when their target lies inside `local_dir`;
    symlinked folders are not descended into.

    Args:
        local_dir: The folder to list.
        skip: Returns True for a file or folder name to leave out. A skipped
            folder is not descended into, and a skipped symlink is not checked.

    Raises:
        ValidationException: A symlink points outside `local_dir`.
    """
    base = local_dir.resolve()
    if not base.is_dir():
        raise ValidationException(f"{str(local_dir)!r} is not a directory")
    files: list[tuple[Path, str]] = []
    for current, dirnames, filenames in os.walk(base, followlinks=False):
        here = Path(current)
        if skip is not None:
            dirnames[:] = [name for name in dirnames if not skip(name)]
            filenames = [name for name in filenames if not skip(name)]
        for name in sorted(dirnames):
            _check_link_inside(here / name, base)
        dirnames.sort()
        for name in sorted(filenames):
            path = here / name
            _check_link_inside(path, base)
            if not path.is_file():
                continue
            files.append((path, path.relative_to(base).as_posix()))
    return files


def _check_link_inside(path: Path, base: Path) -> None:
    if not path.is_symlink():
        return
    target = path.resolve()
    if target != base and base not in target.parents:
        raise ValidationException(
            f"{str(path)!r} is a symlink to {str(target)!r}, outside the "
            "directory being uploaded"
        )
