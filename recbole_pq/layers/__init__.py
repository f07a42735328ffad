"""Building blocks of the sequence encoders: the SASRec encoder, faster element-wise ops for its blocks, LISA attention."""
