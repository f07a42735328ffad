"""numba kernels behind the scorers: the fused scan (``scan``) and safe dynamic pruning (``prune``)."""
