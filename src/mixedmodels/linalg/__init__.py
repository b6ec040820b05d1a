"""Block types and kernels of the blocked Cholesky factor, compiled objectives, BLAS threads."""
