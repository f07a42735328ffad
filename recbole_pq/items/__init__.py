"""Item tables (dense, sub-item ids, codebooks), how items get their codes and table sizes, and how a catalogue is scored."""
