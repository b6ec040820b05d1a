"""Fan-out of independent tasks over an executor (serial, processes, a Dask cluster)."""
