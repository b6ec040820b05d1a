"""The random-effects structure, the cross-products A and the factor L(theta), the profiled
criterion, and the optimizer with its summary."""
