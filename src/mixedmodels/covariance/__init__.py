"""Covariance structures: one per random-effects term (G), and the residual structure (R)."""
