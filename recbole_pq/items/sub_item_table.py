"""ItemCodeEmbedding: items as m sub-item ids, embeddings as concatenated sub-item embeddings."""

from __future__ import annotations

from logging import getLogger

import numpy as np
import torch
from torch import nn

from recbole_pq.items.assignment import code_dtype
from recbole_pq.items.derived_cache import DerivedCache
from recbole_pq.items.sizing import head_bytes, resolve_codebook_sizes, starvation_warnings


class ItemCodeEmbedding(nn.Module):
    """Item table of RecJPQ: (N, m) integer codes + (m, b, d/m) sub-item embeddings.

    An item's embedding is the concatenation over splits s of
    ``sub_item_embeddings[s, codes[item, s]]``.  The codes are a buffer, so they are
    saved in (and restored from) the model's state_dict; they are never trained.
    A compressed ``ItemTable`` (``recbole_pq.items.table``).

    Dense head (``head_ids``): a few items (the most popular ones) also own a learned
    residual, added to their sub-item vector, so the items most targets are about are not
    limited to what their shared sub-items can say.  ``head_ids`` (H,) are sorted item ids,
    ``head_residuals`` (H, d) start at zero (the model starts from the codes' vectors).
    The PQ scorers score the codes (``sub_item_scores``) and then the head exactly
    (``head_scores``, recbole_pq.items.scoring).
    """

    compressed = True

    def __init__(self, codes: np.ndarray | torch.Tensor, b: int, dim: int, init_std: float = 0.02,
                 sub_item_init: np.ndarray | None = None, head_ids: np.ndarray | torch.Tensor | None = None):
        """``sub_item_init``: (m, b, d/m) starting tables (e.g. PQ centroids), rescaled as a
        whole to standard deviation ``init_std`` so the rest of the model sees the scale it
        was initialised for; random N(0, init_std) when None."""
        super().__init__()
        codes = torch.as_tensor(np.asarray(codes))
        if codes.dim() != 2:
            raise ValueError(f"codes must be (n_items, m), got shape {tuple(codes.shape)}")
        n_items, m = codes.shape
        if dim % m:
            raise ValueError(f"embedding size {dim} is not divisible by the number of splits m={m}")
        if int(codes.min()) < 0 or int(codes.max()) >= b:
            raise ValueError(f"codes must lie in [0, {b}), found [{int(codes.min())}, {int(codes.max())}]")
        self.n_items, self.m, self.b, self.dim = n_items, m, b, dim
        self.sub_dim = dim // m
        torch_dtype = {np.uint8: torch.uint8, np.int16: torch.int16, np.int32: torch.int32}[code_dtype(b).type]
        self.register_buffer("codes", codes.to(torch_dtype))
        if sub_item_init is None:
            tables = torch.randn(m, b, self.sub_dim) * init_std
        else:
            tables = torch.as_tensor(np.asarray(sub_item_init), dtype=torch.float32)
            if tables.shape != (m, b, self.sub_dim):
                raise ValueError(f"sub_item_init must be (m, b, d/m) = {(m, b, self.sub_dim)}, got {tuple(tables.shape)}")
            tables = tables * (init_std / tables.std().clamp(min=1e-12))
        self.sub_item_embeddings = nn.Parameter(tables)
        head = torch.as_tensor(np.asarray([] if head_ids is None else head_ids, dtype=np.int64))
        if head.dim() != 1 or (head.numel() and (int(head.min()) < 1 or int(head.max()) >= n_items
                                                   or bool((head[1:] <= head[:-1]).any()))):
            raise ValueError(f"head_ids must be increasing item ids in [1, {n_items}), got {head.tolist()[:8]}...")
        self.n_head = int(head.numel())
        self.register_buffer("head_ids", head.to(torch.int32))  # int32: stored bytes are counted
        self.head_residuals = nn.Parameter(torch.zeros(self.n_head, dim))
        self._cache = DerivedCache()

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # checkpoints from before the dense head have no head entries: they hold no head
        for name, empty in (("head_ids", self.head_ids), ("head_residuals", self.head_residuals)):
            if prefix + name not in state_dict and not self.n_head:
                state_dict[prefix + name] = empty.detach().clone()
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def item_codes(self, item_ids: torch.Tensor) -> torch.Tensor:
        """(...,) item ids -> (..., m) int64 codes."""
        return self.codes[item_ids].long()

    def forward(self, item_ids: torch.Tensor) -> torch.Tensor:
        """(...,) item ids -> (..., d) embeddings."""
        codes = self.item_codes(item_ids)  # (..., m)
        splits = torch.arange(self.m, device=codes.device)
        vectors = self.sub_item_embeddings[splits, codes].flatten(-2)  # (..., m, d/m) -> (..., d)
        if not self.n_head:
            return vectors
        slot = torch.searchsorted(self.head_ids, item_ids.to(torch.int32)).clamp(max=self.n_head - 1)
        in_head = (self.head_ids[slot] == item_ids).unsqueeze(-1)
        return torch.where(in_head, vectors + self.head_residuals[slot], vectors)

    def head_scores(self, query: torch.Tensor) -> torch.Tensor:
        """(B, d) queries -> (B, H) exact scores of the head items (``head_ids``' order)."""
        def compute():
            return self.forward(self.head_ids.long())

        vectors = compute() if torch.is_grad_enabled() else self._cache.get(
            "head", (self.codes, self.sub_item_embeddings, self.head_ids, self.head_residuals), compute)
        return query @ vectors.T

    def tail_items(self) -> "TailItems":
        """The items outside the dense head as a compressed table of their own (cached)."""
        return self._cache.get("tail", (self.codes, self.head_ids), lambda: TailItems(self))

    def sub_item_scores(self, query: torch.Tensor) -> torch.Tensor:
        """(B, d) queries -> (B, m, b): dot product of each query part with each sub-item embedding."""
        parts = query.reshape(query.shape[0], self.m, self.sub_dim)
        # the bmm einsum("bsk,sck->bsc") dispatches to, without its parsing: same values,
        # half the time for one user (~12 vs ~27 us, which scorer prune's 0.2 ms calls feel)
        return torch.bmm(parts.transpose(0, 1), self.sub_item_embeddings.transpose(1, 2)).transpose(0, 1)

    def reconstruct(self) -> torch.Tensor:
        """The full (N, d) item matrix (for the dense scorer and the CE loss).

        Without gradients (evaluation, serving) it is cached until the codes or the
        sub-item embeddings change (tensor versions are part of the key)."""
        def compute():
            return self.forward(torch.arange(self.n_items, device=self.codes.device))

        if torch.is_grad_enabled():
            return compute()
        return self._cache.get("items", (self.codes, self.sub_item_embeddings, self.head_ids, self.head_residuals),
                               compute)

    def memory_bytes(self) -> dict[str, int]:
        """Bytes of this representation vs a dense float32 N x d table."""
        dense = self.n_items * self.dim * 4
        codes = self.codes.numel() * self.codes.element_size()
        tables = self.sub_item_embeddings.numel() * self.sub_item_embeddings.element_size()
        head = head_bytes(self.n_head, self.dim)
        return {"dense": dense, "codes": codes, "sub_item_tables": tables, "dense_head": head,
                "compressed": codes + tables + head}

    def extra_repr(self) -> str:
        head = f", dense head={self.n_head}" if self.n_head else ""
        return f"n_items={self.n_items}, m={self.m}, b={self.b}, dim={self.dim}{head}"


class TailItems:
    """The items outside an ``ItemCodeEmbedding``'s dense head, for the PQ scan: their codes
    (N - H, m) in id order (padding first), scored with the table's own sub-item scores.
    The scan of these codes never meets a head item, so a top-k of the tail needs no more
    than k rows; ``item_ids`` maps scan positions back to item ids.  Costs a copy of the
    tail's codes while cached (serving memory, not the stored representation)."""

    compressed = True
    n_head = 0

    def __init__(self, items: ItemCodeEmbedding):
        keep = torch.ones(items.n_items, dtype=torch.bool, device=items.codes.device)
        keep[items.head_ids.long()] = False
        self.codes = items.codes[keep].contiguous()
        self.n_items, self.m, self.b, self.dim = int(keep.sum()), items.m, items.b, items.dim
        self.sub_item_scores = items.sub_item_scores
        # tail items before each head item: position p is id p + (head items whose count is <= p)
        head = items.head_ids.long()
        self._tail_before_head = head - torch.arange(len(head), device=head.device)

    def item_ids(self, positions: torch.Tensor) -> torch.Tensor:
        """(...,) scan positions in ``codes`` -> (...,) item ids."""
        shift = torch.searchsorted(self._tail_before_head, positions.to(self._tail_before_head.device), right=True)
        return positions + shift.to(positions.device, positions.dtype)


def check_pq_config(config, n_items: int | None = None) -> None:
    """``pq_m``, ``pq_b`` (integers or auto), ``code_assignment``; the catalogue bound on
    pq_b once n_items (padding included) is known and auto values are resolved."""
    from recbole_pq.errors import ConfigError

    dim, m, b = config["hidden_size"], config["pq_m"], config["pq_b"]
    if m != "auto" and (not isinstance(m, int) or m < 1 or dim % m):
        divisors = [x for x in range(1, dim + 1) if dim % x == 0]
        raise ConfigError(f"pq_m={m} must divide hidden_size={dim}; allowed values: {divisors} or auto.")
    top = "the number of items" if n_items is None else n_items - 1
    if b != "auto" and (not isinstance(b, int) or b < 2 or (n_items is not None and b > n_items - 1)):
        raise ConfigError(f"pq_b={b} must be an integer in [2, {top}] (the number of items), or auto.")
    head = config["pq_dense_head"]
    if head not in (None, "auto") and (isinstance(head, bool) or not isinstance(head, int) or head < 0
                                       or (n_items is not None and head > n_items - 1)):
        raise ConfigError(f"pq_dense_head={head!r} must be an integer in [0, {top}] (items with their own residual "
                          f"vector, the most popular first; 0: none), or auto.")
    if n_items is not None and "auto" in (m, b, head):  # auto is chosen from the catalogue when the model is built
        raise ValueError("resolve pq_m/pq_b/pq_dense_head (sizing.resolve_codebook_sizes) before the catalogue check")
    check_code_assignment(config)


def check_code_assignment(config) -> None:
    from recbole_pq.errors import ConfigError
    from recbole_pq.items.assignment import CODE_ASSIGNMENTS, KMEANS_QUANTISERS

    if config["code_assignment"] not in CODE_ASSIGNMENTS:
        raise ConfigError(f"code_assignment='{config['code_assignment']}' is not supported; "
                          f"use one of {list(CODE_ASSIGNMENTS)}.")
    if config["unique_codes"] not in (None, True, False):
        raise ConfigError(f"unique_codes={config['unique_codes']!r} must be true or false.")
    if config["pq_kmeans"] not in (None, *KMEANS_QUANTISERS):
        raise ConfigError(f"pq_kmeans='{config['pq_kmeans']}' is not supported; use one of {list(KMEANS_QUANTISERS)}.")


def codes_for_dataset(method: str, m: int, b: int, config, dataset) -> np.ndarray:
    """(n_items, m) codes in [0, b) by ``method`` (``assignment.CODE_ASSIGNMENTS``)."""
    return codes_and_tables_for_dataset(method, m, b, config, dataset)[0]


def codes_and_tables_for_dataset(method: str, m: int, b: int, config, dataset):
    """(n_items, m) codes by ``method``, and starting sub-item tables (m, b, d/m) where the
    method gives them (svd_pq, svd_opq), else None; data-driven methods read the dataset's training
    interactions; padding id 0 and unseen items get codes too."""
    from recbole_pq.data.seq2seq import training_user_item
    from recbole_pq.items.assignment import DATA_ASSIGNMENTS, assign_codes_and_tables

    user_ids = item_ids = None
    if method in DATA_ASSIGNMENTS:
        user_ids, item_ids = training_user_item(dataset, config)
    return assign_codes_and_tables(method, dataset.num(config["ITEM_ID_FIELD"]), m, b, seed=config["seed"],
                                   user_ids=user_ids, item_ids=item_ids,
                                   n_users=dataset.num(config["USER_ID_FIELD"]), dim=config["hidden_size"],
                                   unique=bool(config["unique_codes"]), quantiser=config["pq_kmeans"] or "auto")


def item_code_embedding_from_config(config, dataset) -> ItemCodeEmbedding:
    """Read ``pq_m``, ``pq_b``, ``code_assignment`` and assign the codes."""
    n_items = dataset.num(config["ITEM_ID_FIELD"])  # includes the padding id 0
    check_pq_config(config)
    m, b = resolve_codebook_sizes(config, n_items)
    check_pq_config(config, n_items)
    for message in starvation_warnings(n_items, config["hidden_size"], m, b, n_head=config["pq_dense_head"] or 0):
        getLogger().warning("%s.", message)
    codes, tables = codes_and_tables_for_dataset(config["code_assignment"], m, b, config, dataset)
    return ItemCodeEmbedding(codes, b, config["hidden_size"], init_std=config["initializer_range"], sub_item_init=tables,
                             head_ids=head_item_ids(config, dataset, config["pq_dense_head"] or 0))


def head_item_ids(config, dataset, n_head: int) -> np.ndarray:
    """(n_head,) increasing ids of the items most often in the training interactions (ties:
    lower id).  A catalogue rebuilt from a checkpoint (``from_checkpoint``) has no
    interactions: placeholder ids, which the checkpoint's weights replace."""
    from recbole_pq.data.seq2seq import training_user_item

    if not n_head:
        return np.zeros(0, dtype=np.int64)
    if getattr(dataset, "from_checkpoint", False):
        return np.arange(1, n_head + 1)
    n_items = dataset.num(config["ITEM_ID_FIELD"])
    counts = np.bincount(training_user_item(dataset, config)[1], minlength=n_items)
    counts[0] = -1  # padding is never in the head
    return np.sort(np.argsort(-counts, kind="stable")[:n_head])
