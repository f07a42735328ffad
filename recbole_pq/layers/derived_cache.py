"""Values derived from tensors (reconstructed item tables, LISA score tables, eval codes,
posting lists), kept until one of those tensors changes.

The key holds each source tensor's identity and version counter: an optimiser step,
``load_state_dict`` (in-place copies) or ``.to(device)`` (a new tensor) all invalidate
it, so a cached value is never stale.  Pickling a module drops its cache.
"""

from __future__ import annotations


class DerivedCache:
    def __init__(self):
        self._entries: dict = {}

    def get(self, name: str, sources, compute):
        """``compute()``'s value for ``name``, recomputed when any source tensor changed."""
        key = tuple((id(t), t._version) for t in sources)
        entry = self._entries.get(name)
        if entry is None or entry[0] != key:
            entry = (key, compute())
            self._entries[name] = entry
        return entry[1]

    def __len__(self) -> int:
        return len(self._entries)

    def __getstate__(self):  # derived data: never pickled
        return {}

    def __setstate__(self, state):
        self._entries = {}
