"""PQTopK with the item codes sharded over Ray actors (one machine or a cluster).

The driver computes a user's (m, b) sub-item score table (a few KB) and sends it to
every shard; each shard scans its range of the codes (memory-mapped from one ``.npy``
file that every node can read; a shard touches only its own pages) with the fused kernel and returns its local top-k; the driver merges them.  The
merged list is exactly the single-process top-k: an item in the global top-k is in its
own shard's top-k.

A shard whose actor dies is restarted and the query retried by Ray once
(``max_restarts``/``max_task_retries``); if it still fails, the query raises
``ShardError`` naming the shard -- a partial top-k is never returned.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from recbole_pq.errors import ConfigError
from recbole_pq.items.kernels.scan import best_k
from recbole_pq.items.scoring import Scorer, has_head, topk_from_sub_scores

RETRIES = 1  # restarts of a dead shard actor, and retries of its query


class ShardError(RuntimeError):
    """A shard could not answer; the query has no result rather than a partial one."""


def check_shards(shards, n_items: int) -> None:
    if not isinstance(shards, int) or not 1 <= shards <= n_items:
        raise ConfigError(f"shards={shards} is not allowed: use an integer from 1 to the {n_items} items.")


def shard_bounds(n_items: int, shards: int) -> list[tuple[int, int]]:
    """[start, end) item ranges of ``shards`` near-equal shards."""
    edges = np.linspace(0, n_items, shards + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


class CodeShard:
    """One shard: items [start, end) of a memory-mapped (N, m) ``.npy`` code file, and
    their top-k scan.  Only the shard's pages of the file are ever read."""

    def __init__(self, path: str, start: int, end: int, threads: int | None = None):
        self.codes = np.load(path, mmap_mode="r")[start:end]
        self.offset = start
        if threads:
            torch.set_num_threads(threads)
            from recbole_pq.items.kernels import scan

            if scan.available():
                import numba

                numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))

    def topk(self, sub_scores: np.ndarray, k: int, delay_s: float = 0.0):
        """(B, m, b) tables -> (values, global ids), each (B, min(k, shard items))."""
        if delay_s:  # tests: keeps a query in flight long enough to kill the actor
            import time

            time.sleep(delay_s)
        skip_padding = self.offset == 0  # global id 0 is RecBole's padding
        k = min(k, self.codes.shape[0] - int(skip_padding))
        if k <= 0:
            return np.zeros((len(sub_scores), 0), np.float32), np.zeros((len(sub_scores), 0), np.int64)
        values, ids = topk_from_sub_scores(torch.from_numpy(np.asarray(sub_scores)), self.codes, k,
                                           skip_padding=skip_padding)
        return values.numpy(), ids.numpy().astype(np.int64) + self.offset


def init_ray(address: str | None = None) -> None:
    """Connect to ``address`` (a running cluster) or start a local Ray, once per process."""
    import ray

    if ray.is_initialized():
        return
    # Ray starts workers at niceness 15 (background work); shard actors answer queries, so a
    # local Ray started here gives them normal priority (a cluster keeps its own setting).
    os.environ.setdefault("RAY_worker_niceness", "0")
    ray.init(address=address, include_dashboard=False, logging_level="WARNING", log_to_driver=False,
             ignore_reinit_error=True)


class ShardPool:
    """Ray actors, one per shard of an (N, m) ``.npy`` code file, that answer top-k
    queries together (see module doc)."""

    def __init__(self, codes_file: str | Path, shards: int, ray_address: str | None = None,
                 threads_per_shard: int | None = None):
        import ray

        n_items = np.load(codes_file, mmap_mode="r").shape[0]
        check_shards(shards, n_items)
        init_ray(ray_address)
        if threads_per_shard is None and ray_address is None:  # shards share this machine's cores
            threads_per_shard = max(1, (os.cpu_count() or 1) // shards)
        actor = ray.remote(num_cpus=0, max_restarts=RETRIES, max_task_retries=RETRIES)(CodeShard)
        bounds = shard_bounds(n_items, shards)
        self.actors = [actor.remote(str(codes_file), start, end, threads_per_shard) for start, end in bounds]
        self.offsets = [start for start, _ in bounds]

    def submit(self, sub_scores: np.ndarray, k: int, delay_s: float = 0.0) -> list:
        """Send one query's (B, m, b) tables to every shard; returns the pending replies."""
        import ray

        table = ray.put(np.ascontiguousarray(sub_scores, dtype=np.float32))
        return [actor.topk.remote(table, k, delay_s) for actor in self.actors]

    def collect(self, replies: list, k: int):
        """Merge every shard's reply into the global (values, ids) top-k, or raise ShardError."""
        import ray

        parts = []
        for index, reply in enumerate(replies):
            try:
                parts.append(ray.get(reply))
            except (ray.exceptions.RayActorError, ray.exceptions.RayTaskError,
                    ray.exceptions.ObjectLostError) as err:
                raise ShardError(f"shard {index} of {len(replies)} (items from id {self.offsets[index]}) failed "
                                 f"after {RETRIES} retry: {type(err).__name__}; no partial top-k is returned.") from err
        values, ids = best_k(np.concatenate([np.asarray(v) for v, _ in parts], axis=1),
                             np.concatenate([np.asarray(i) for _, i in parts], axis=1), k)
        return torch.from_numpy(values), torch.from_numpy(ids)

    def topk(self, sub_scores: np.ndarray, k: int):
        return self.collect(self.submit(sub_scores, k), k)

    def close(self) -> None:
        """Stop the shard actors (their files stay where they are)."""
        import ray

        for actor in self.actors:
            ray.kill(actor)
        self.actors = []


class ShardedScorer(Scorer):
    """``pqtopk`` over ``shards`` Ray actors that hold the codes (see module doc).

    ``shard_dir``: where the codes' ``.npy`` file goes (default: a fresh temporary
    directory); on a cluster it must be a path every node can read."""

    name = "sharded"
    reads_codes = True

    def __init__(self, items, shards: int, ray_address: str | None = None, shard_dir: str | Path | None = None,
                 threads_per_shard: int | None = None):
        if not items.compressed:
            raise ConfigError("sharded scoring needs compressed items (codes); this model has a dense item table.")
        if has_head(items):  # the shards scan the items outside the dense head; the head is scored here
            items = items.tail_items()
        check_shards(shards, items.n_items)  # before the codes are written out
        self.items_codes = items.codes  # the codes the shards hold: refuse to score other ones
        self.shard_dir = Path(shard_dir) if shard_dir else Path(tempfile.mkdtemp(prefix="recbole-pq-shards-"))
        self.shard_dir.mkdir(parents=True, exist_ok=True)
        codes_file = self.shard_dir / "codes.npy"
        np.save(codes_file, np.ascontiguousarray(items.codes.cpu().numpy()))
        self.pool = ShardPool(codes_file, shards, ray_address, threads_per_shard)

    def _scores(self, query, items):
        raise NotImplementedError("the sharded scorer returns top-k only; use scorer 'pqtopk' for all scores.")

    def _topk(self, query, items, k):
        if items.codes is not self.items_codes:
            raise ConfigError("ShardedScorer was built for another item table; build a new one for these items.")
        return self.pool.topk(items.sub_item_scores(query).detach().float().cpu().numpy(), k)

    def close(self) -> None:
        self.pool.close()
