"""Outcome scripts: what the simulated containers and InferenceServices do.

A test chooses outcomes in two ways:

* In process, through ``FakeCluster.scripts``::

      cluster.scripts.set("pytorchjobs", "train-*", fail(exit_code=3),
                          replica_type="Worker")

* Out of process, through the annotation ``testing.maestro-ml.io/script`` on the
  job, pod or InferenceService. Its value is JSON: either one script object that
  applies to every replica, or ``{"default": {...}, "replicas": {"Worker": {...},
  "Worker/1": {...}}}``. Keys are the camelCase field names of ``PodScript`` or
  ``ServingScript`` (``outcome``, ``exitCode``, ``runTime``, ``logs`` ...).

Delays are in seconds. ``None`` means one tick of the cluster (``FakeCluster(tick=)``),
so default timelines take a few tens of milliseconds.
"""

from __future__ import annotations

import asyncio
import dataclasses
import fnmatch
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

SCRIPT_ANNOTATION = "testing.maestro-ml.io/script"
"""Annotation whose JSON value scripts the object that carries it."""

SCRIPT_ID_ANNOTATION = "testing.maestro-ml.io/script-id"
"""Annotation with the id of a script in ``Scripts``, set on controller-built pods.

The controllers pass a resolved script to their pods by id, so long log lines in
the script neither grow the pod object nor count toward its 256 KiB annotations.
"""

POD_OUTCOMES = (
    "succeed",
    "fail",
    "hang",
    "pending",
    "pull_error",
    "init_pull_error",
    "init_fail",
    "unschedulable",
)
GATE_STAGES = ("schedule", "run")
SERVING_OUTCOMES = ("ready", "revision_failed", "model_load_failed", "stuck")

LogEntry = tuple[float, str]


def _log_entries(logs: Sequence[str | Sequence[Any]]) -> tuple[LogEntry, ...]:
    entries: list[LogEntry] = []
    for item in logs:
        if isinstance(item, str):
            entries.append((0.0, item))
        else:
            entries.append((float(item[0]), str(item[1])))
    return tuple(entries)


PULL_ERRORS = (
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "ErrImageNeverPull",
)
"""Image pull waiting reasons that a pod script can produce."""


@dataclass(frozen=True)
class PodScript:
    """Timeline of one pod's containers.

    Attributes:
        outcome: ``succeed`` (exit 0), ``fail`` (exit ``exit_code``), ``hang``
            (stay Running), ``pending`` (stay Pending in ContainerCreating) or
            ``pull_error`` (stay Pending with ``pull_error`` as waiting reason),
            ``init_pull_error`` (an init container waits with ``pull_error``),
            ``init_fail`` (an init container exits with ``exit_code``) or
            ``unschedulable`` (PodScheduled False, reason Unschedulable). The
            pods of the last three stay Pending until deleted, except that
            ``init_fail`` makes a pod with restartPolicy Never Failed.
        exit_code: Exit code of a failing run or init container, 1 when unset.
        reason: ``state.terminated.reason`` of a failing run or init container
            (``Error``, ``OOMKilled`` ...).
        message: ``state.terminated.message`` of a failing run or init
            container, and the scheduler's message for ``unschedulable``.
        restarts: Failing runs before the final outcome. With restartPolicy
            OnFailure or Always the kubelet restarts the container in place; with
            Never each failed pod consumes one, and the owner's next pod continues.
        restart_exit_code: Exit code of those failing runs.
        logs: Lines written by each run, as ``(delay, text)`` pairs. The delay
            counts from the previous line.
        schedule_delay: Time until the pod is scheduled.
        start_delay: Time in ContainerCreating before the container runs.
        run_time: Time between the last log line and the exit. With ``0`` and no
            log delay the pod never reports Running, as happens when a
            container ends between two kubelet status updates.
        pull_error: The waiting reason of ``pull_error`` and
            ``init_pull_error``: ``ImagePullBackOff`` or ``ErrImagePull``
            (a pull that failed), ``InvalidImageName`` or ``ErrImageNeverPull``
            (the kubelet does not try to pull).
        gate: Name of a gate that the pod waits at until ``Scripts.open_gate``
            opens it, so a test can act at a known point of the timeline.
        gate_stage: Where the pod waits: ``schedule`` (Pending and unscheduled)
            or ``run`` (Running, before each run writes its first log line).
    """

    outcome: str = "succeed"
    exit_code: int | None = None
    reason: str | None = None
    message: str | None = None
    restarts: int = 0
    restart_exit_code: int = 1
    logs: tuple[LogEntry, ...] = ()
    schedule_delay: float | None = None
    start_delay: float | None = None
    run_time: float | None = None
    pull_error: str = "ImagePullBackOff"
    gate: str | None = None
    gate_stage: str = "run"

    def __post_init__(self) -> None:
        if self.gate_stage not in GATE_STAGES:
            raise ValueError(
                f"invalid gate_stage {self.gate_stage!r}: expected one of {GATE_STAGES}"
            )
        if self.outcome not in POD_OUTCOMES:
            raise ValueError(
                f"invalid pod outcome {self.outcome!r}: expected one of {POD_OUTCOMES}"
            )
        if self.pull_error not in PULL_ERRORS:
            raise ValueError(
                f"invalid pull_error {self.pull_error!r}: expected one of {PULL_ERRORS}"
            )

    def after_attempts(self, attempts: int) -> PodScript:
        """Return the script for a replacement pod after ``attempts`` failed pods."""
        if attempts <= 0 or self.restarts == 0:
            return self
        return dataclasses.replace(self, restarts=max(0, self.restarts - attempts))

    def to_json(self) -> dict[str, Any]:
        """Return the annotation form of the script (camelCase keys)."""
        return _to_camel(dataclasses.asdict(self))


@dataclass(frozen=True)
class ServingScript:
    """Timeline of one InferenceService revision.

    Attributes:
        outcome: ``ready``, ``revision_failed`` (the revision's container cannot
            start), ``model_load_failed`` (the model server exits while loading)
            or ``stuck`` (the revision stays not ready).
        ready_delay: Time from a new revision to its outcome.
        observe_delay: Extra time before ``status.observedGeneration`` reaches
            the new generation, after the outcome.
        exit_code: Exit code of the failed model server, 1 when unset.
        message: Failure message; a default one names the revision.
    """

    outcome: str = "ready"
    ready_delay: float | None = None
    observe_delay: float = 0.0
    exit_code: int | None = None
    message: str | None = None

    def __post_init__(self) -> None:
        if self.outcome not in SERVING_OUTCOMES:
            raise ValueError(
                f"invalid serving outcome {self.outcome!r}: expected one of "
                f"{SERVING_OUTCOMES}"
            )

    def to_json(self) -> dict[str, Any]:
        """Return the annotation form of the script (camelCase keys)."""
        return _to_camel(dataclasses.asdict(self))


def succeed(
    *, logs: Sequence[str | Sequence[Any]] = (), run_time: float | None = None
) -> PodScript:
    """Build a script whose containers write ``logs`` and exit 0."""
    return PodScript(logs=_log_entries(logs), run_time=run_time)


def fail(
    exit_code: int = 1,
    *,
    reason: str = "Error",
    message: str | None = None,
    logs: Sequence[str | Sequence[Any]] = (),
    run_time: float | None = None,
) -> PodScript:
    """Build a script whose containers exit with ``exit_code``."""
    return PodScript(
        outcome="fail",
        exit_code=exit_code,
        reason=reason,
        message=message,
        logs=_log_entries(logs),
        run_time=run_time,
    )


def hang(
    *, logs: Sequence[str | Sequence[Any]] = (), pending: bool = False
) -> PodScript:
    """Build a script whose pods stay Running (or Pending) until deleted."""
    outcome = "pending" if pending else "hang"
    return PodScript(outcome=outcome, logs=_log_entries(logs))


def restart_then_succeed(
    restarts: int, *, exit_code: int = 1, logs: Sequence[str | Sequence[Any]] = ()
) -> PodScript:
    """Build a script that fails ``restarts`` times with ``exit_code``, then exits 0."""
    return PodScript(
        restarts=restarts, restart_exit_code=exit_code, logs=_log_entries(logs)
    )


def pull_error(reason: str = "ImagePullBackOff") -> PodScript:
    """Build a script whose pods stay Pending because the image cannot be pulled."""
    return PodScript(outcome="pull_error", pull_error=reason)


def init_pull_error(reason: str = "ImagePullBackOff") -> PodScript:
    """Build a script whose pods stay Pending: an init image cannot be pulled."""
    return PodScript(outcome="init_pull_error", pull_error=reason)


def init_fail(
    exit_code: int = 1, *, reason: str = "Error", message: str | None = None
) -> PodScript:
    """Build a script whose init container exits non-zero on every run.

    Under restartPolicy Never the pod becomes Failed. Under OnFailure or Always
    it stays Pending while the init container crash-loops.
    """
    return PodScript(
        outcome="init_fail", exit_code=exit_code, reason=reason, message=message
    )


NO_GPU_MESSAGE = "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."
"""Scheduler message of a pod that requests GPUs that no node has free."""


def unschedulable(message: str = NO_GPU_MESSAGE) -> PodScript:
    """Build a script whose pods stay Pending because no node fits them."""
    return PodScript(outcome="unschedulable", message=message)


def ready(*, delay: float | None = None, observe_delay: float = 0.0) -> ServingScript:
    """Build a script whose revisions become ready after ``delay``."""
    return ServingScript(ready_delay=delay, observe_delay=observe_delay)


def revision_failed(message: str | None = None) -> ServingScript:
    """Build a script whose revisions fail (Ready False, reason RevisionFailed)."""
    return ServingScript(outcome="revision_failed", message=message)


def model_load_failed(exit_code: int = 1, message: str | None = None) -> ServingScript:
    """Build a script whose model servers exit with ``exit_code`` while loading."""
    return ServingScript(
        outcome="model_load_failed", exit_code=exit_code, message=message
    )


def stuck() -> ServingScript:
    """Build a script whose revisions never become ready."""
    return ServingScript(outcome="stuck")


DEFAULT_POD_SCRIPT = PodScript(
    logs=((0.0, "starting"), (0.0, "step 1/2"), (0.0, "step 2/2"), (0.0, "done"))
)
DEFAULT_SERVING_SCRIPT = ServingScript()


@dataclass(frozen=True)
class _Rule:
    plural: str
    name: str
    script: PodScript | ServingScript
    replica_type: str | None = None
    replica_index: int | None = None

    def matches(
        self,
        plural: str,
        name: str,
        replica_type: str | None,
        replica_index: int | None,
    ) -> bool:
        if self.plural not in ("*", plural):
            return False
        if not fnmatch.fnmatchcase(name, self.name):
            return False
        if self.replica_type is not None and (
            replica_type is None or self.replica_type.lower() != replica_type.lower()
        ):
            return False
        return self.replica_index is None or self.replica_index == replica_index


@dataclass
class Scripts:
    """Registry of outcome scripts, matched by resource plural, name and replica.

    Rules added later win over earlier ones. The annotation on the object wins
    over every rule, and a pod's script id wins over its script annotation.

    Attributes:
        default_pod: Script for pods that no rule or annotation matches.
        default_serving: Script for InferenceServices that nothing matches.
    """

    default_pod: PodScript = DEFAULT_POD_SCRIPT
    default_serving: ServingScript = DEFAULT_SERVING_SCRIPT
    _rules: list[_Rule] = field(default_factory=list)
    _gates: dict[str, asyncio.Event] = field(default_factory=dict)
    # NOTE: registered scripts stay for the registry's lifetime. Equal scripts
    # share one id, so the size grows with the distinct scripts, not the pods.
    _ids: dict[PodScript, str] = field(default_factory=dict)
    _by_id: dict[str, PodScript] = field(default_factory=dict)

    def set(
        self,
        plural: str,
        name: str,
        script: PodScript | ServingScript,
        *,
        replica_type: str | None = None,
        replica_index: int | None = None,
    ) -> None:
        """Script the objects of ``plural`` (or ``"*"``) whose name matches a glob.

        Args:
            plural: Resource plural such as ``pytorchjobs``, ``jobs``, ``trainjobs``,
                ``pods`` or ``inferenceservices``.
            name: Exact name or ``fnmatch`` glob.
            script: A ``PodScript`` for jobs and pods, a ``ServingScript`` for
                InferenceServices.
            replica_type: Only this replica type (``Worker``, ``Master``, the
                TrainJob step ``node`` ...), compared case-insensitively.
            replica_index: Only this replica index.
        """
        rule = _Rule(plural.lower(), name, script, replica_type, replica_index)
        self._rules.append(rule)

    def clear(self) -> None:
        """Remove every rule."""
        self._rules.clear()

    def gate(self, name: str) -> asyncio.Event:
        """Return the gate ``name`` (an event, set once open), creating it closed."""
        event = self._gates.get(name)
        if event is None:
            event = self._gates[name] = asyncio.Event()
        return event

    def open_gate(self, name: str) -> None:
        """Open the gate ``name``: pods waiting there continue, later ones pass."""
        self.gate(name).set()

    def register(self, script: PodScript) -> str:
        """Store ``script`` and return its id, the same id for equal scripts."""
        script_id = self._ids.get(script)
        if script_id is None:
            script_id = f"pod-script-{len(self._ids) + 1}"
            self._ids[script] = script_id
            self._by_id[script_id] = script
        return script_id

    def by_id(self, script_id: str) -> PodScript:
        """Return the script registered as ``script_id``.

        Raises:
            ValueError: No script has this id, for example because the pod was
                copied from another fake cluster.
        """
        script = self._by_id.get(script_id)
        if script is None:
            raise ValueError(
                f"invalid {SCRIPT_ID_ANNOTATION} annotation: script id "
                f"{script_id!r} not found in this cluster"
            )
        return script

    def for_pod(
        self,
        plural: str,
        name: str,
        *,
        replica_type: str | None = None,
        replica_index: int | None = None,
        annotations: Mapping[str, str] | None = None,
    ) -> PodScript:
        """Return the pod script of one replica of the object ``plural``/``name``.

        Raises:
            ValueError: The object's script or script id annotation is invalid.
        """
        script_id = (annotations or {}).get(SCRIPT_ID_ANNOTATION)
        if script_id is not None:
            return self.by_id(script_id)
        raw = (annotations or {}).get(SCRIPT_ANNOTATION)
        if raw is not None:
            data = _select_replica(_load(raw), replica_type, replica_index)
            return PodScript(**_pod_fields(data))
        script = self._match(plural, name, replica_type, replica_index, PodScript)
        return script if isinstance(script, PodScript) else self.default_pod

    def for_serving(
        self, name: str, annotations: Mapping[str, str] | None = None
    ) -> ServingScript:
        """Return the script of the InferenceService ``name``.

        Raises:
            ValueError: The object's script annotation is invalid.
        """
        raw = (annotations or {}).get(SCRIPT_ANNOTATION)
        if raw is not None:
            data = _select_replica(_load(raw), None, None)
            return ServingScript(**_plain_fields(data, ServingScript))
        script = self._match("inferenceservices", name, None, None, ServingScript)
        return script if isinstance(script, ServingScript) else self.default_serving

    def _match(
        self,
        plural: str,
        name: str,
        replica_type: str | None,
        replica_index: int | None,
        wanted: type,
    ) -> PodScript | ServingScript | None:
        for rule in reversed(self._rules):
            if isinstance(rule.script, wanted) and rule.matches(
                plural, name, replica_type, replica_index
            ):
                return rule.script
        return None


def _to_camel(values: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in values.items():
        head, *rest = key.split("_")
        camel = head + "".join(part.capitalize() for part in rest)
        result[camel] = [list(v) for v in value] if key == "logs" else value
    return result


def _load(raw: str) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid {SCRIPT_ANNOTATION} annotation: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"invalid {SCRIPT_ANNOTATION} annotation: expected an object")
    return data


def _select_replica(
    data: dict[str, Any], replica_type: str | None, replica_index: int | None
) -> dict[str, Any]:
    if "replicas" not in data and "default" not in data:
        return data
    replicas = data.get("replicas") or {}
    by_key = {str(key).lower(): value for key, value in replicas.items()}
    if replica_type is not None:
        for key in (f"{replica_type}/{replica_index}".lower(), replica_type.lower()):
            if isinstance(by_key.get(key), dict):
                return dict(by_key[key])
    default = data.get("default") or {}
    return dict(default) if isinstance(default, dict) else {}


def _plain_fields(data: dict[str, Any], cls: type) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in key)
        if snake not in names:
            raise ValueError(
                f"invalid {SCRIPT_ANNOTATION} annotation: unknown field {key!r}"
            )
        kwargs[snake] = value
    return kwargs


def _pod_fields(data: dict[str, Any]) -> dict[str, Any]:
    kwargs = _plain_fields(data, PodScript)
    if "logs" in kwargs:
        kwargs["logs"] = _log_entries(kwargs["logs"])
    return kwargs


def pod_script_json(script: PodScript) -> str:
    """Return ``script`` as the value of a pod's script annotation."""
    return json.dumps(script.to_json(), separators=(",", ":"))
