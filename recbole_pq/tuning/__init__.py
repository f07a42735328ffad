"""Ray Tune sweeps: the tune file (``spec``), the trials and the sweep (``run``), the results (``report``)."""
