"""Sub-item tables sized from the catalogue: ``pq_b: auto`` and ``pq_m: auto``, and a warning
when a configuration is likely to starve the model.

The compressed item representation is codes (N x m integers) plus sub-item tables (b x d
float32).  With a fixed b the tables stay b x d however large the catalogue, so on large
catalogues each sub-item embedding is shared by hundreds of items.  ``auto`` spends the
memory a user gives up anyway: the largest b (a power of two, at most 2^15 for int16 codes)
that keeps the whole representation at least ``COMPRESSION_TARGET`` times smaller than a
dense float32 N x d table -- and never below ``MIN_CODES`` (the long-standing default),
where the catalogue is too small for compression to matter.

``pq_dense_head: auto`` spends what is left of that budget after codes and tables on a
dense head: residual vectors of the most popular items (``ItemCodeEmbedding``), as many
as fit (none where codes and tables already use the budget, e.g. ml-100k and ML-1M).  With
both auto, b stays at ``MIN_CODES`` (one-byte codes) and the head takes the rest: on Amazon
Video Games 1,353 head items at b = 256 beat 371 at b = 512 and b = 512 alone on validation
(docs/QUALITY_DETAILS.md, "Defaults over seeds").
"""

from __future__ import annotations

import math
from logging import getLogger

from recbole_pq.items.assignment import code_dtype

COMPRESSION_TARGET = 10  # codes + tables at least this many times smaller than dense float32
MIN_CODES = 256  # pq_b: auto never goes below this (RecJPQ's b; a small catalogue's tables are tiny)
MAX_CODES = 2**15  # int16 codes
SUB_DIM = 16  # pq_m: auto -- sub-item embeddings this wide (d / 16 splits)
# Starvation warning thresholds (see starvation_warnings).
MAX_ITEMS_PER_CODE = 50
MIN_SUB_DIM = 8


def representation_bytes(n_items: int, dim: int, m: int, b: int) -> int:
    """Bytes of codes (N x m, the smallest integer type for b) plus sub-item tables (b x d float32)."""
    return n_items * m * code_dtype(b).itemsize + b * dim * 4


def head_bytes(n_head: int, dim: int) -> int:
    """Bytes of a dense head: a d-wide float32 residual and an int32 id per head item."""
    return n_head * (dim * 4 + 4)


def auto_dense_head(n_items: int, dim: int, m: int, b: int) -> int:
    """``pq_dense_head: auto``: the most head items that keep codes + tables + head at least
    ``COMPRESSION_TARGET`` times smaller than dense (0 when codes and tables use it all)."""
    spare = n_items * dim * 4 // COMPRESSION_TARGET - representation_bytes(n_items, dim, m, b)
    return int(max(0, min(n_items - 1, spare // head_bytes(1, dim))))


def auto_codes_per_split(n_items: int, dim: int, m: int) -> int:
    """``pq_b: auto`` for a catalogue of ``n_items`` (padding included): see the module doc."""
    dense = n_items * dim * 4
    b = MIN_CODES
    while b * 2 <= MAX_CODES and representation_bytes(n_items, dim, m, b * 2) * COMPRESSION_TARGET <= dense:
        b *= 2
    return max(2, min(b, n_items - 1))


def auto_splits(dim: int) -> int:
    """``pq_m: auto``: d / 16 splits (16-wide sub-item embeddings), the largest divisor of d not above it."""
    m = max(1, dim // SUB_DIM)
    while dim % m:
        m -= 1
    return m


def resolve_codebook_sizes(config, n_items: int) -> tuple[int, int]:
    """(m, b) of a configuration (and its ``pq_dense_head``), ``auto`` values chosen from the catalogue and written back
    into the config (so the checkpoint records the numbers) and logged."""
    dim = config["hidden_size"]
    quotient_remainder = config["code_assignment"] == "qr"  # two codes that tell every item apart
    chosen = []
    if config["pq_m"] == "auto":
        config["pq_m"] = 2 if quotient_remainder else auto_splits(dim)
        chosen.append(f"pq_m={config['pq_m']}")
    if config["pq_b"] == "auto":
        if quotient_remainder:
            config["pq_b"] = math.isqrt(n_items - 1) + 1
        elif config["pq_dense_head"] == "auto":  # the budget goes to the head: b stays at one-byte codes
            config["pq_b"] = max(2, min(MIN_CODES, n_items - 1))
        else:
            config["pq_b"] = auto_codes_per_split(n_items, dim, config["pq_m"])
        chosen.append(f"pq_b={config['pq_b']}")
    if config["pq_dense_head"] == "auto":
        config["pq_dense_head"] = auto_dense_head(n_items, dim, config["pq_m"], config["pq_b"])
        chosen.append(f"pq_dense_head={config['pq_dense_head']}")
    if chosen:
        getLogger().info("sub-item tables sized for %d items, d=%d: %s (auto; item representation >= %dx smaller "
                         "than dense where the catalogue allows)", n_items - 1, dim, ", ".join(chosen),
                         COMPRESSION_TARGET)
    return config["pq_m"], config["pq_b"]


def starvation_warnings(n_items: int, dim: int, m: int, b: int, names: tuple[str, str] = ("pq_m", "pq_b"),
                        split_dims: bool = True, n_head: int = 0) -> list[str]:
    """What is likely to starve a compressed model: many items sharing each sub-item id
    (unless a dense head gives the popular items their own residuals: then the tail shares
    them by design), or (``split_dims``: sub-item embeddings are d/m wide) very narrow
    sub-item embeddings; each message says what to change."""
    m_name, b_name = names
    messages = []
    per_code = (n_items - 1) / b
    if per_code > MAX_ITEMS_PER_CODE and not n_head:
        better = auto_codes_per_split(n_items, dim, m)
        hint = f" (e.g. {b_name}={better}, or {b_name}=auto)" if better > b and b_name == "pq_b" else \
            (f" (e.g. {b_name}={better})" if better > b else "")
        head_hint = ", or give the popular items their own vectors (pq_dense_head=auto)" if b_name == "pq_b" else ""
        messages.append(f"{per_code:.0f} items share each sub-item id ({n_items - 1} items, {b_name}={b}): the "
                        f"tables may be too small to tell items apart; raise {b_name}{hint}{head_hint}")
    if split_dims and dim // m < MIN_SUB_DIM:
        messages.append(f"sub-item embeddings are {dim // m} wide (hidden_size={dim}, {m_name}={m}): lower {m_name} "
                        f"(e.g. {m_name}={auto_splits(dim)}) or raise hidden_size")
    return messages
