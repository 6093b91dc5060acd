"""Run build tasks: in this process (1 worker) or in a pool of local processes. Every kind takes the
same (tasks, worker) and gives the same results, retries failed tasks and reports alike; the
output bytes never depend on the executor."""
from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from uir25m.shards import ShardTask, TaskResult

KINDS = ("local",)


class BuildError(RuntimeError):
    """Tasks that failed after their retries."""


def _init_worker() -> None:
    import cv2

    cv2.setNumThreads(1)


def run(
    tasks: Sequence[ShardTask],
    worker: Callable[[ShardTask], TaskResult],
    *,
    kind: str = "local",
    workers: int = 1,
    retries: int = 1,
    on_result: Callable[[TaskResult], None] | None = None,
) -> list[TaskResult]:
    """Run every task (each at most 1 + `retries` times); results in task order.

    Raises BuildError naming every shard that still failed. An exception raised by the worker
    (strict mode) propagates unchanged.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown executor {kind!r}; available: {', '.join(KINDS)}")
    if workers < 1:
        raise ValueError("workers must be >= 1")
    results: dict[str, TaskResult] = {}
    pending = list(tasks)
    for attempt in range(retries + 1):
        failed: list[ShardTask] = []
        for task, result in _run_once(pending, worker, workers):
            if result.ok or attempt == retries:
                results[task.shard] = result
                if on_result:
                    on_result(result)
            if not result.ok:
                failed.append(task)
        if not failed:
            break
        pending = failed
    bad = [r for r in results.values() if not r.ok]
    if bad:
        lines = "\n".join(f"  {r.shard}: {r.error}" for r in bad)
        raise BuildError(f"{len(bad)} shard(s) failed after {retries + 1} attempt(s):\n{lines}")
    return [results[t.shard] for t in tasks]


def _run_once(tasks: Sequence[ShardTask], worker, workers: int):
    if workers == 1 or len(tasks) <= 1:
        for task in tasks:
            yield task, worker(task)
        return
    ctx = multiprocessing.get_context("spawn")  # no fork of a process holding library threads
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker) as pool:
        # largest tasks first (longest-processing-time order) so no big shard is left for the end
        queue = deque(sorted(tasks, key=lambda t: -len(t.items)))
        running: dict[Future, ShardTask] = {}
        while queue or running:
            while queue and len(running) < 2 * workers:  # bounded: memory stays flat in the task count
                task = queue.popleft()
                running[pool.submit(worker, task)] = task
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in done:
                task = running.pop(fut)
                try:
                    result = fut.result()
                except BrokenProcessPool:
                    raise BuildError(
                        f"a worker process died while building {task.shard} (killed, or out of memory?); "
                        "finished shards are kept: rerun the same command to resume"
                    ) from None
                yield task, result
