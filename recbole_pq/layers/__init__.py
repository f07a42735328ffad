"""Building blocks the models compose: item codes, the SASRec encoder (and LISA)."""
