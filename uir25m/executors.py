"""Run build tasks: `local` (in this process for 1 worker, else a pool of local processes) or
`ray` (a Ray cluster: an existing one at `address`, or a local one of `workers` CPUs). Every kind
takes the same (tasks, worker), retries failed tasks and reports alike; the output bytes never
depend on the executor."""
from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from uir25m.shards import ShardTask, TaskResult

KINDS = ("local", "ray")


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
    address: str | None = None,
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
        attempt_results = _run_ray(pending, worker, workers, address) if kind == "ray" else _run_once(pending, worker, workers)
        for task, result in attempt_results:
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


def _call(worker, task: ShardTask) -> TaskResult:
    return worker(task)


def _run_ray(tasks: Sequence[ShardTask], worker, workers: int, address: str | None):
    try:
        import ray
    except ImportError:
        raise ImportError("the Ray executor needs Ray: pip install 'uir25m[ray]'") from None
    started = not ray.is_initialized()
    if started:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    try:
        remote = ray.remote(num_cpus=1, max_retries=0)(_call)
        worker_ref = ray.put(worker)
        queue = deque(sorted(tasks, key=lambda t: -len(t.items)))
        running: dict = {}
        limit = 2 * max(workers, int(ray.cluster_resources().get("CPU", workers)))
        while queue or running:
            while queue and len(running) < limit:
                task = queue.popleft()
                running[remote.remote(worker_ref, task)] = task
            done, _ = ray.wait(list(running), num_returns=1)
            for ref in done:
                task = running.pop(ref)
                yield task, ray.get(ref)  # a strict-mode error re-raises here as its own type
    finally:
        if started:
            ray.shutdown()
