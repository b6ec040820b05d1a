"""Fits of data split into partitions (a Dask DataFrame): the same model, from summed
cross-products."""
