"""Simulated controllers of the fake cluster: kubelet, operators and KServe.

``start_controllers`` starts one task per controller. The tasks read the store
directly (never over HTTP), so they see every write at once. Cancelling a task
stops its controller, and the kubelet task then ends every pod task and local
process it owns.
"""

from __future__ import annotations

import asyncio

from ._base import Host, Reconciler
from .batch import BatchJobController
from .kserve import InferenceServiceController
from .pods import Kubelet
from .training import training_controllers
from .trainjob import TrainJobController

__all__ = ["Host", "start_controllers"]


def start_controllers(cluster: Host) -> list[asyncio.Task[None]]:
    """Start the kubelet and every operator for ``cluster`` and return their tasks.

    Must be called from the event loop that serves the cluster. Cancel the tasks
    to stop the controllers.
    """
    reconcilers: list[Reconciler] = [
        *training_controllers(cluster),
        BatchJobController(cluster),
        TrainJobController(cluster),
        InferenceServiceController(cluster),
    ]
    tasks = [asyncio.create_task(Kubelet(cluster).run(), name="fake kubelet")]
    for reconciler in reconcilers:
        name = f"fake {reconciler.primary.kind} controller"
        tasks.append(asyncio.create_task(reconciler.run(), name=name))
    return tasks
