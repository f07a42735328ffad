"""Serving trained models: the checkpoint schema, ``Recommender``, sharded scoring, the recommend CLI."""
