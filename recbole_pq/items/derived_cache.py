"""Values derived from tensors (reconstructed item tables, LISA score tables, eval codes,
posting lists), kept until one of those tensors changes.

The key holds each source tensor's identity, version counter, device, dtype and data
pointer: an optimiser step or ``load_state_dict`` (in-place copies) bump the version;
``module.to()``, ``.double()``, ``.cuda()`` keep the Parameter object (and may keep its
version count) but give it new data, so they change the pointer, dtype or device.  A
cached value is never stale.  Pickling a module drops its cache.
"""

from __future__ import annotations


class DerivedCache:
    def __init__(self):
        self._entries: dict = {}

    def get(self, name: str, sources, compute):
        """``compute()``'s value for ``name``, recomputed when any source tensor changed."""
        key = tuple((id(t), t._version, t.device, t.dtype, t.data_ptr()) for t in sources)
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
