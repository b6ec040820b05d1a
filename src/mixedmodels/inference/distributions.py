"""The reference distributions' tails and quantiles, as scipy.special computes them (Cephes).

scipy.special is imported at the first call, not with the package: it takes 0.07 s, which a fit
without tests or intervals (the command line's, say) does not need. Each function has the
signature, broadcasting and dtype of its scipy.special namesake.
"""

from __future__ import annotations

__all__ = ["chdtrc", "fdtrc", "ndtri", "stdtr"]


def ndtri(p):
    """The standard normal quantile of p (array-like in [0, 1]); scipy.special.ndtri."""
    from scipy.special import ndtri as quantile
    return quantile(p)


def chdtrc(df, x):
    """The chi-square upper tail P(X > x) on df degrees of freedom; scipy.special.chdtrc."""
    from scipy.special import chdtrc as upper
    return upper(df, x)


def fdtrc(df_num, df_den, x):
    """The F upper tail P(F > x) on (df_num, df_den) degrees of freedom;
    scipy.special.fdtrc."""
    from scipy.special import fdtrc as upper
    return upper(df_num, df_den, x)


def stdtr(df, t):
    """Student's t lower tail P(T <= t) on df degrees of freedom; scipy.special.stdtr."""
    from scipy.special import stdtr as lower
    return lower(df, t)
