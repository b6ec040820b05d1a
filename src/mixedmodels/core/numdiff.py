"""Numerical derivatives by central differences with Richardson extrapolation.

Each derivative is estimated with steps h, h/2, h/4, h/8 and the estimates are combined so that
the O(h^2), O(h^4), ... error terms cancel (the method of R's numDeriv). Used for derivatives of
quantities that cost nothing in n (the objective and Var(beta-hat) as functions of theta), so
no n x n matrix is ever formed.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["hessian", "jacobian", "step_sizes"]

ZERO_TOLERANCE = np.sqrt(np.finfo(float).eps / 7e-7)


def step_sizes(x: np.ndarray, relative: float, absolute: float = 1e-4) -> np.ndarray:
    """The first step of each parameter's differences: ``relative`` of it, or ``absolute``
    where it is (nearly) 0."""
    return np.abs(relative * x) + absolute * (np.abs(x) < ZERO_TOLERANCE)


def _extrapolate(estimates: list) -> np.ndarray:
    """Richardson extrapolation of estimates at steps h, h/2, ... (error series in h^2)."""
    table = list(estimates)
    for m in range(1, len(table)):
        factor = 4.0 ** m
        table = [(factor * table[k + 1] - table[k]) / (factor - 1) for k in range(len(table) - 1)]
    return table[0]


def jacobian(f: Callable[[np.ndarray], np.ndarray], x, relative: float = 1e-4,
             rounds: int = 4) -> np.ndarray:
    """d f / d x as an array of shape (len(x),) + shape(f(x))."""
    x = np.asarray(x, dtype=float)
    steps = step_sizes(x, relative)
    out = []
    for i in range(len(x)):
        estimates, h = [], steps[i]
        for _ in range(rounds):
            e = np.zeros_like(x)
            e[i] = h
            estimates.append((np.asarray(f(x + e)) - np.asarray(f(x - e))) / (2 * h))
            h /= 2
        out.append(_extrapolate(estimates))
    return np.array(out)


def hessian(f: Callable[[np.ndarray], float], x, relative: float = 0.1,
            rounds: int = 4) -> np.ndarray:
    """Matrix of second derivatives of a scalar function."""
    x = np.asarray(x, dtype=float)
    k = len(x)
    steps = step_sizes(x, relative)
    f0 = f(x)
    out = np.zeros((k, k))
    for i in range(k):
        for j in range(i + 1):
            estimates, hi, hj = [], steps[i], steps[j]
            for _ in range(rounds):
                ei, ej = np.zeros(k), np.zeros(k)
                ei[i], ej[j] = hi, hj
                if i == j:
                    value = (f(x + ei) - 2 * f0 + f(x - ei)) / hi ** 2
                else:
                    value = (f(x + ei + ej) - f(x + ei - ej) - f(x - ei + ej)
                             + f(x - ei - ej)) / (4 * hi * hj)
                estimates.append(value)
                hi, hj = hi / 2, hj / 2
            out[i, j] = out[j, i] = _extrapolate(estimates)
    return out
