"""Sub-item id assignment: each item gets m codes (one per split), each in [0, b).

``svd`` is RecJPQ's method: a truncated SVD of the binary user x item matrix of the
*training* interactions; split k takes component k's item loadings, min-max
normalised, with tiny noise so ties break, and cuts them into b equal-population
bins.  ``bpr`` cuts the m item factors of a BPR matrix factorisation of the same
interactions the same way (RecJPQ's second method).  ``svd_pq`` quantises d-dimensional SVD
item vectors with a product quantiser (k-means with b centroids per split of d/m dims):
its codes, and its centroids as the sub-item tables' starting point (RecJPQ-HC's idea), so
at step 0 the item table is the PQ reconstruction of the SVD vectors.  ``svd_opq`` does the
same after rotating the vectors as an optimised product quantiser does (OPQ): SVD puts most
of the variance in the first dimensions, so plain splits give split 0 the informative
components and the last split near-noise; the rotation spreads the variance over the splits
and then lowers the quantisation error by alternating k-means and an orthogonal
Procrustes step.  With ``unique`` (key ``unique_codes``) svd_pq and svd_opq then give every
item its own code tuple (``break_code_ties``): items with (near-)identical SVD vectors -- the
rarely seen ones -- otherwise share one tuple and so one embedding.  ``qr`` is quotient-remainder
(m = 2: item id // b and item id % b, b >= ceil(sqrt(N))), a cheap baseline that uses
no data.  ``random`` draws uniform codes.  All are deterministic for a seed.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import scipy.sparse as sp

from recbole_pq.errors import ConfigError

CODE_ASSIGNMENTS = ("svd", "svd_pq", "svd_opq", "bpr", "qr", "random")
DATA_ASSIGNMENTS = ("svd", "svd_pq", "svd_opq", "bpr")  # need the training interactions
TABLE_ASSIGNMENTS = ("svd_pq", "svd_opq")  # give starting sub-item tables with their codes
OPQ_ITERATIONS = 4  # rotation updates after the variance-balancing start
KMEANS_POINTS_PER_CENTROID = 256  # k-means trains on at most this many points per centroid (as FAISS does)
FLAT_KMEANS_ENTRIES = 2**26  # pq_kmeans auto: above this many point-centroid distances per iteration, two levels
TWO_LEVEL_MIN_POINTS = 2**14  # pq_kmeans auto: two levels from this many items on (measured: see kmeans)
KMEANS_QUANTISERS = ("auto", "flat", "two_level")
TIE_CANDIDATES = 32  # cheapest single-split moves kept per tied item before a full sort of its m x b moves
TIE_PAIR_POOL = 512  # two-split changes are drawn from this many cheapest single-split ones
TIE_BLOCK_FLOATS = 2**24  # move costs computed for this many (item, split, code) cells at a time


def code_dtype(b: int) -> np.dtype:
    """Smallest integer type that holds codes 0..b-1 (uint8 up to b = 256)."""
    if b <= 256:
        return np.dtype(np.uint8)
    if b <= 32768:
        return np.dtype(np.int16)
    return np.dtype(np.int32)


def random_codes(n_items: int, m: int, b: int, seed: int) -> np.ndarray:
    """(n_items, m) uniform codes."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, b, size=(n_items, m)).astype(code_dtype(b))


def equal_population_bins(values: np.ndarray, b: int) -> np.ndarray:
    """Codes in [0, b) such that every bin holds n/b values (+-1), by rank."""
    ranks = np.empty(len(values), dtype=np.int64)
    ranks[np.argsort(values, kind="stable")] = np.arange(len(values))
    return (ranks * b // len(values)).astype(code_dtype(b))


def loadings_to_codes(loadings: np.ndarray, b: int, rng: np.random.Generator) -> np.ndarray:
    """(n_items,) real loadings -> codes: min-max normalised, tiny noise so ties break, then
    b equal-population bins."""
    loadings = loadings.astype(np.float64)
    span = loadings.max() - loadings.min()
    normalised = (loadings - loadings.min()) / span if span > 0 else np.zeros_like(loadings)
    normalised += rng.uniform(0, 1e-6, size=len(loadings))
    return equal_population_bins(normalised, b)


def quotient_remainder_codes(n_items: int, m: int, b: int) -> np.ndarray:
    """(n_items, 2) codes (id // b, id % b): distinct for every item when b * b >= n_items."""
    minimum = math.isqrt(n_items - 1) + 1 if n_items > 1 else 1
    if m != 2:
        raise ConfigError(f"code_assignment='qr' needs pq_m=2 (quotient and remainder); got pq_m={m}.")
    if b < minimum:
        raise ConfigError(f"code_assignment='qr' needs pq_b >= ceil(sqrt({n_items})) = {minimum} so every item gets "
                          f"its own pair of codes; got pq_b={b}.")
    ids = np.arange(n_items)
    return np.stack([ids // b, ids % b], axis=1).astype(code_dtype(b))


def bpr_item_factors(user_ids: np.ndarray, item_ids: np.ndarray, n_users: int, n_items: int, dim: int,
                     seed: int, epochs: int = 20, batch_size: int = 8192, lr: float = 0.01,
                     weight_decay: float = 1e-5) -> np.ndarray:
    """(n_items, dim) item factors of BPR matrix factorisation (Rendle et al.) on the
    (user, item) training pairs: one uniformly drawn negative item per pair, Adam, seeded."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    batch_size = min(batch_size, max(64, len(user_ids) // 20))  # >= 20 steps an epoch on small data
    users = torch.as_tensor(np.asarray(user_ids), dtype=torch.long)
    items = torch.as_tensor(np.asarray(item_ids), dtype=torch.long)
    user_factors = torch.nn.Parameter(0.1 * torch.randn(n_users, dim, generator=generator))
    item_factors = torch.nn.Parameter(0.1 * torch.randn(n_items, dim, generator=generator))
    optimiser = torch.optim.Adam([user_factors, item_factors], lr=lr)
    with torch.enable_grad():
        for _ in range(epochs):
            order = torch.randperm(len(users), generator=generator)
            for start in range(0, len(order), batch_size):
                rows = order[start:start + batch_size]
                u, positive = users[rows], items[rows]
                negative = torch.randint(1, n_items, (len(rows),), generator=generator)  # id 0 is padding
                user_vec = user_factors[u]
                margin = (user_vec * (item_factors[positive] - item_factors[negative])).sum(1)
                loss = -torch.nn.functional.logsigmoid(margin).mean() + weight_decay * (
                    user_vec.pow(2).sum() + item_factors[positive].pow(2).sum() + item_factors[negative].pow(2).sum()
                ) / len(rows)
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
    return item_factors.detach().numpy()


def bpr_codes(user_ids: np.ndarray, item_ids: np.ndarray, n_users: int, n_items: int,
              m: int, b: int, seed: int) -> np.ndarray:
    """(n_items, m) codes: split k cuts BPR item factor k into b equal-population bins."""
    factors = bpr_item_factors(user_ids, item_ids, n_users, n_items, m, seed)
    rng = np.random.default_rng(seed)
    codes = np.empty((n_items, m), dtype=code_dtype(b))
    for split in range(m):
        codes[:, split] = loadings_to_codes(factors[:, split], b, rng)
    return codes


def kmeans(points: np.ndarray, b: int, seed: int, iterations: int = 20,
           quantiser: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """(b, k) centroids and (n,) codes of the (n, k) points by ``quantiser``: flat
    (``flat_kmeans``), two_level (``two_level_kmeans``), or auto: two_level from
    TWO_LEVEL_MIN_POINTS points on, or where one flat iteration would compute more than
    FLAT_KMEANS_ENTRIES point-centroid distances (1M items x 2^15 codes: 2^35 per split).  Chosen
    on validation NDCG@10 (docs/QUALITY_DETAILS.md, "Defaults over seeds"): two levels beat flat on
    Amazon Video Games (23.7K items) and lost on ml-100k (1.7K items)."""
    if quantiser not in KMEANS_QUANTISERS:
        raise ConfigError(f"pq_kmeans='{quantiser}' is not supported; use one of {list(KMEANS_QUANTISERS)}.")
    if quantiser == "auto":
        train = min(len(points), KMEANS_POINTS_PER_CENTROID * b)
        quantiser = "two_level" if len(points) >= TWO_LEVEL_MIN_POINTS or train * b > FLAT_KMEANS_ENTRIES else "flat"
    if quantiser == "two_level" and len(points) >= b >= 4:
        return two_level_kmeans(points, b, seed, iterations)
    return flat_kmeans(points, b, seed, iterations)


def cell_shares(weights: np.ndarray, population: np.ndarray, total: int) -> np.ndarray:
    """Integers summing to ``total`` (<= population.sum()), about proportional to ``weights``, at
    least 1 and at most ``population`` in every non-empty cell: floors of the quotas, then one at
    a time to the cell with the most quota per centroid after the change (from the least)."""
    if weights[population > 0].sum() <= 0:
        weights = population.astype(np.float64)
    quota = weights / weights[population > 0].sum() * total
    shares = np.where(population > 0, np.clip(np.floor(quota), 1, population), 0).astype(np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):  # the cells the where() leaves out
        while shares.sum() > total:  # the minimum of 1 overshot
            shares[np.argmin(np.where(shares > 1, quota / (shares - 1), np.inf))] -= 1
        while shares.sum() < total:  # floors and caps left some
            shares[np.argmax(np.where(shares < population, quota / (shares + 1), -np.inf))] += 1
    return shares


def two_level_kmeans(points: np.ndarray, b: int, seed: int, iterations: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """k-means in two levels: ceil(sqrt(b)) coarse cells, then each cell's points get their own
    k-means with a share of the b centroids proportional to the cell's squared error around its
    coarse centroid (at least one per non-empty cell, at most one per point: a cell of identical
    points -- never-seen items' zero vectors -- gets one).  N (sqrt(b) + b / sqrt(b)) distances
    per iteration instead of N b; a point's code is its nearest centroid within its cell."""
    cells = math.isqrt(b - 1) + 1
    coarse, cell_of = flat_kmeans(points, cells, seed, iterations)
    population = np.bincount(cell_of, minlength=cells)
    squared_error = np.bincount(cell_of, weights=((points - coarse[cell_of]) ** 2).sum(1), minlength=cells)
    shares = cell_shares(squared_error, population, b)
    centroids = np.empty((b, points.shape[1]), dtype=np.float32)
    codes = np.empty(len(points), dtype=np.int64)
    offset = 0
    for cell in np.flatnonzero(shares):
        members = np.flatnonzero(cell_of == cell)
        centroids[offset:offset + shares[cell]], local = flat_kmeans(points[members], int(shares[cell]),
                                                                     seed + 1 + int(cell), iterations)
        codes[members] = offset + local
        offset += shares[cell]
    return centroids, codes


def flat_kmeans(points: np.ndarray, b: int, seed: int, iterations: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's k-means: (n, k) float points -> (b, k) centroids and (n,) nearest-centroid ids.
    Starts from b distinct points drawn with the seed; an emptied centroid restarts at a
    random point; trains on at most KMEANS_POINTS_PER_CENTROID * b points, assigns all."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    x = torch.as_tensor(points, dtype=torch.float32)
    train = x[torch.randperm(len(x), generator=generator)[:KMEANS_POINTS_PER_CENTROID * b]]
    start = torch.randperm(len(train), generator=generator)[:b]
    centroids = train[start].clone()
    if len(centroids) < b:  # fewer points than centroids: the rest start at jittered copies
        extra = train[torch.randint(0, len(train), (b - len(centroids),), generator=generator)]
        centroids = torch.cat([centroids, extra + 1e-3 * torch.randn(extra.shape, generator=generator)])
    for _ in range(iterations):
        nearest = nearest_centroid(train, centroids)
        sums = torch.zeros_like(centroids).index_add_(0, nearest, train)
        counts = torch.bincount(nearest, minlength=b).unsqueeze(1)
        empty = counts.squeeze(1) == 0
        centroids = torch.where(empty.unsqueeze(1), centroids, sums / counts.clamp(min=1))
        if empty.any():
            centroids[empty] = train[torch.randint(0, len(train), (int(empty.sum()),), generator=generator)]
    return centroids.numpy(), nearest_centroid(x, centroids).numpy()


def nearest_centroid(points, centroids, rows: int = 4096):
    """(n,) id of each point's nearest centroid (squared Euclidean), in blocks of rows."""
    import torch

    half_norms = 0.5 * centroids.pow(2).sum(1)
    out = torch.empty(len(points), dtype=torch.long)
    for start in range(0, len(points), rows):
        block = points[start:start + rows]
        out[start:start + rows] = (half_norms - block @ centroids.T).argmin(1)  # ||x-c||^2/2 - ||x||^2/2
    return out


def interaction_matrix(user_ids, item_ids, n_users: int, n_items: int) -> sp.csr_matrix:
    """The binary (n_users, n_items) matrix of the training interactions."""
    matrix = sp.csr_matrix((np.ones(len(user_ids), dtype=np.float32), (user_ids, item_ids)), shape=(n_users, n_items))
    matrix.data[:] = 1.0  # duplicates summed by csr: back to binary
    return matrix


def svd_item_vectors(user_ids, item_ids, n_users: int, n_items: int, dim: int, seed: int) -> np.ndarray:
    """(n_items, dim) item vectors of a truncated SVD of the binary user x item matrix
    (right singular vectors scaled by their singular values; zero columns past the rank)."""
    from sklearn.utils.extmath import randomized_svd

    matrix = interaction_matrix(user_ids, item_ids, n_users, n_items)
    vectors = np.zeros((n_items, dim), dtype=np.float32)
    rank = min(dim, min(matrix.shape) - 1)
    if rank >= 1:
        _, singular, vt = randomized_svd(matrix, n_components=rank, random_state=seed)
        vectors[:, :rank] = (vt.T * singular).astype(np.float32)
    return vectors


def product_quantise(vectors: np.ndarray, m: int, b: int, seed: int,
                     quantiser: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """((n, m) codes, (m, b, d/m) centroids): split s quantises dims [s*d/m, (s+1)*d/m) of the
    (n, d) vectors with its own k-means (``kmeans``' ``quantiser``)."""
    n, dim = vectors.shape
    sub_dim = dim // m
    codes = np.empty((n, m), dtype=code_dtype(b))
    centroids = np.empty((m, b, sub_dim), dtype=np.float32)
    for split in range(m):
        centroids[split], codes[:, split] = kmeans(vectors[:, split * sub_dim:(split + 1) * sub_dim], b, seed + split,
                                                          quantiser=quantiser)
    return codes, centroids


def pq_reconstruction(codes: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """(n, d): each item's centroids, concatenated over the splits."""
    return np.concatenate([centroids[split][codes[:, split]] for split in range(codes.shape[1])], axis=1)


def single_move_costs(vectors: np.ndarray, codes: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """(n, m * b) rise in squared quantisation error when an item's code in split s becomes j
    (flat index s * b + j; 0 at its own codes): ||x_s - c_sj||^2 - ||x_s - c_s,code_s||^2."""
    n, m = codes.shape
    b, sub_dim = centroids.shape[1:]
    costs = np.empty((n, m * b), dtype=np.float64)
    for split in range(m):
        x = vectors[:, split * sub_dim:(split + 1) * sub_dim].astype(np.float64)
        c = centroids[split].astype(np.float64)
        distances = (c * c).sum(1) - 2.0 * x @ c.T  # ||x||^2 is common to every code of the split
        costs[:, split * b:(split + 1) * b] = distances - np.take_along_axis(distances, codes[:, split:split + 1]
                                                                               .astype(np.int64), axis=1)
    return costs


def cheapest_moves(costs: np.ndarray, count: int) -> np.ndarray:
    """(n, count) flat move indices of each row's ``count`` smallest costs, cheapest first
    (ties by index, so the result is deterministic)."""
    count = min(count, costs.shape[1])
    if count < costs.shape[1]:
        part = np.argpartition(costs, count - 1, axis=1)[:, :count]
    else:
        part = np.broadcast_to(np.arange(costs.shape[1]), costs.shape).copy()
    part.sort(axis=1)  # index order first, so the stable cost sort breaks ties by index
    order = np.argsort(np.take_along_axis(costs, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def single_moves(costs: np.ndarray) -> np.ndarray:
    """(m * b, 2) flat single-split moves of one item, cheapest first (second column -1)."""
    singles = cheapest_moves(costs[None], len(costs))[0]
    return np.stack([singles, np.full_like(singles, -1)], 1)


def pair_moves(costs: np.ndarray, b: int) -> np.ndarray:
    """(k, 2) flat moves in two splits of one item, drawn from its ``TIE_PAIR_POOL`` cheapest
    single moves, cheapest summed cost first (ties by index)."""
    pool = cheapest_moves(costs[None], TIE_PAIR_POOL)[0]
    first, second = np.triu_indices(len(pool), 1)
    first, second = pool[first], pool[second]
    apart = first // b != second // b
    first, second = first[apart], second[apart]
    order = np.lexsort((second, first, costs[first] + costs[second]))
    return np.stack([first[order], second[order]], 1)


def break_code_ties(codes: np.ndarray, vectors: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """(n, m) codes in which no two items share a tuple, where b^m >= n allows it.  Of each
    group of items that share a tuple the lowest id keeps it; each other item, in id order,
    changes one split's code to the centroid that raises its squared quantisation error the
    least among the changes that give an unused tuple (two splits once every single change is
    taken).  Items with the same vector and codes (e.g. never seen in training) share one
    ranking of changes and take them in turn: a group of g costs one ranking, not g."""
    n, m = codes.shape
    b = centroids.shape[1]
    if m * math.log2(b) < math.log2(max(n, 1)):
        logging.getLogger(__name__).warning(
            "unique_codes: %d items cannot all have their own tuple of %d codes out of %d; ties kept.", n, m, b)
        return codes
    _, first, inverse = np.unique(codes, axis=0, return_index=True, return_inverse=True)
    movers = np.flatnonzero(first[inverse.ravel()] != np.arange(n))
    if not len(movers):
        return codes
    out = codes.copy()
    used = {row.tobytes() for row in codes[first]}
    # movers with bit-identical vectors and codes share one ranking; `group` is the first mover of each
    keys = np.hstack([np.ascontiguousarray(vectors[movers], dtype=np.float32).view(np.uint32),
                      codes[movers].astype(np.uint32)])
    _, group, group_of = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    group, group_of = movers[group], group_of.ravel()
    shortlists = np.empty((len(group), min(TIE_CANDIDATES, m * b)), dtype=np.int64)
    rows = max(1, TIE_BLOCK_FLOATS // (m * b))
    for start in range(0, len(group), rows):
        block = group[start:start + rows]
        shortlists[start:start + rows] = cheapest_moves(single_move_costs(vectors[block], codes[block], centroids),
                                                        TIE_CANDIDATES)

    def take(item: int, candidate: np.ndarray) -> bool:
        key = candidate.tobytes()
        if key in used:
            return False
        used.add(key)
        out[item] = candidate
        return True

    def try_moves(item: int, moves: np.ndarray, start: int) -> int:
        """Apply the first of the (k, 2) flat ``moves`` from ``start`` that gives an unused tuple; its index, or -1."""
        for position in range(start, len(moves)):
            candidate = codes[item].copy()
            for move in moves[position]:
                if move >= 0:
                    candidate[move // b] = move % b
            if take(item, candidate):
                return position
        return -1

    states: dict[int, list] = {}  # group -> [ranked moves, first index not known to be used, stage]
    for item, index in zip(movers, group_of):
        state = states.setdefault(index, [np.stack([shortlists[index], np.full_like(shortlists[index], -1)], 1),
                                          0, "shortlist"])
        while (placed := try_moves(item, state[0], state[1])) < 0 and state[2] != "pairs":
            costs = single_move_costs(vectors[item:item + 1], codes[item:item + 1], centroids)[0]
            if state[2] == "shortlist":  # every single-split change, rescanned from the cheapest
                state[:] = [single_moves(costs), 0, "singles"]
            else:  # every single-split change taken: pairs next
                state[:] = [np.concatenate([state[0], pair_moves(costs, b)]), len(state[0]), "pairs"]
        if placed >= 0:
            state[1] = placed + 1
            continue
        rng = np.random.default_rng(int(item))  # every ranked change taken: random ones until unused
        while not take(item, rng.integers(0, b, size=m).astype(codes.dtype)):
            pass
    return out


def balanced_allocation(variances: np.ndarray, m: int) -> np.ndarray:
    """A permutation of the d dimensions that gives each split d/m of them with the products of
    their variances as equal as possible (OPQ's eigenvalue allocation).  Greedy on the log
    variances shifted to be >= 0 (every split takes d/m of them, so the shift changes no
    comparison): the largest remaining goes to the open split whose sum is smallest."""
    per_split = len(variances) // m
    logs = np.log(np.maximum(np.asarray(variances, dtype=np.float64), 1e-12))
    logs -= logs.min()
    sums = np.zeros(m)
    members: list[list[int]] = [[] for _ in range(m)]
    for dim in np.argsort(-logs, kind="stable"):
        split = min((s for s in range(m) if len(members[s]) < per_split), key=lambda s: (sums[s], s))
        members[split].append(int(dim))
        sums[split] += logs[dim]
    return np.array([dim for split in members for dim in split])


def opq_rotation(vectors: np.ndarray, m: int, b: int, seed: int, iterations: int = OPQ_ITERATIONS,
                 quantiser: str = "auto") -> np.ndarray:
    """(d, d) orthogonal rotation R for ``vectors @ R``: starts at the balanced allocation (a
    permutation), then alternates a product quantiser of the rotated vectors with the rotation
    that best maps the vectors onto its reconstruction (orthogonal Procrustes)."""
    dim = vectors.shape[1]
    rotation = np.eye(dim, dtype=np.float64)[:, balanced_allocation(vectors.var(axis=0), m)]
    x = vectors.astype(np.float64)
    for _ in range(iterations):
        codes, centroids = product_quantise((x @ rotation).astype(np.float32), m, b, seed, quantiser)
        left, _, right = np.linalg.svd(x.T @ pq_reconstruction(codes, centroids).astype(np.float64))
        rotation = left @ right
    return rotation.astype(np.float32)


def svd_pq_codes(user_ids, item_ids, n_users: int, n_items: int, m: int, b: int, dim: int,
                 seed: int, rotate: bool = False, unique: bool = False,
                 quantiser: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """((n_items, m) codes, (m, b, dim/m) centroids): a product quantiser (k-means by
    ``quantiser``) of the SVD item vectors (rotated by ``opq_rotation`` first when ``rotate``;
    ties broken when ``unique``)."""
    vectors = svd_item_vectors(user_ids, item_ids, n_users, n_items, dim, seed)
    if rotate:
        vectors = vectors @ opq_rotation(vectors, m, b, seed, quantiser=quantiser)
    codes, centroids = product_quantise(vectors, m, b, seed, quantiser)
    if unique:
        codes = break_code_ties(codes, vectors, centroids)
    return codes, centroids


def svd_codes(user_ids: np.ndarray, item_ids: np.ndarray, n_users: int, n_items: int,
              m: int, b: int, seed: int) -> np.ndarray:
    """(n_items, m) codes from a truncated SVD of the binary user x item matrix."""
    from sklearn.utils.extmath import randomized_svd

    matrix = interaction_matrix(user_ids, item_ids, n_users, n_items)
    rng = np.random.default_rng(seed)
    n_components = min(m, min(matrix.shape) - 1)
    codes = np.empty((n_items, m), dtype=code_dtype(b))
    if n_components >= 1:
        _, _, vt = randomized_svd(matrix, n_components=n_components, random_state=seed)
        for split in range(n_components):
            codes[:, split] = loadings_to_codes(vt[split], b, rng)
    if n_components < m:
        logging.getLogger(__name__).warning(
            "svd code assignment: the %dx%d interaction matrix has only %d usable components; "
            "splits %d..%d get random codes.", n_users, n_items, n_components, n_components, m - 1)
        codes[:, n_components:] = random_codes(n_items, m - n_components, b, seed)
    return codes


def require_interactions(method: str, user_ids, item_ids, n_users) -> None:
    if user_ids is None or item_ids is None or n_users is None or len(user_ids) == 0:
        raise ConfigError(f"code_assignment='{method}' needs the training interactions, and there are none.")


def assign_codes_and_tables(method: str, n_items: int, m: int, b: int, seed: int, user_ids=None, item_ids=None,
                            n_users: int | None = None, dim: int | None = None, unique: bool = False,
                            quantiser: str = "auto"):
    """((n_items, m) codes, (m, b, dim/m) starting sub-item tables or None) by ``method``;
    only svd_pq and svd_opq give tables (their centroids), the others leave the tables to random init;
    ``unique`` and ``quantiser`` (svd_pq, svd_opq only): every item its own code tuple; which k-means."""
    if method in TABLE_ASSIGNMENTS:
        require_interactions(method, user_ids, item_ids, n_users)
        if dim is None or dim % m:
            raise ConfigError(f"code_assignment='{method}' needs hidden_size divisible by pq_m; got {dim} and {m}.")
        return svd_pq_codes(np.asarray(user_ids), np.asarray(item_ids), n_users, n_items, m, b, dim, seed,
                            rotate=method == "svd_opq", unique=unique, quantiser=quantiser)
    return assign_codes(method, n_items, m, b, seed, user_ids, item_ids, n_users), None


def assign_codes(method: str, n_items: int, m: int, b: int, seed: int,
                 user_ids=None, item_ids=None, n_users: int | None = None) -> np.ndarray:
    """(n_items, m) codes by ``method`` (svd and bpr need the training user/item ids; svd_pq's
    and svd_opq's codes come with tables: ``assign_codes_and_tables``)."""
    if method in TABLE_ASSIGNMENTS:
        raise ValueError(f"{method} gives codes and tables: call assign_codes_and_tables")
    if method == "random":
        return random_codes(n_items, m, b, seed)
    if method == "qr":
        return quotient_remainder_codes(n_items, m, b)
    if method in DATA_ASSIGNMENTS:
        require_interactions(method, user_ids, item_ids, n_users)
        assign = svd_codes if method == "svd" else bpr_codes
        return assign(np.asarray(user_ids), np.asarray(item_ids), n_users, n_items, m, b, seed)
    raise ConfigError(f"code_assignment='{method}' is not supported; use one of {list(CODE_ASSIGNMENTS)}.")
