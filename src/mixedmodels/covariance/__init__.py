"""Covariance structures: one per random-effects term (G), and the residual structure (R).

The residual structures are public as ``mm.cov``: the correlation structures ``AR1``,
``CAR1``, ``CS``, ``Symm``, ``Toep``, ``ARMA`` and the spatial ``Exp``, ``Gaus``, ``Spher``,
``Lin`` and ``Ratio`` (``correlation=``) and the variance functions
``VarIdent``, ``VarPower`` and ``VarExp`` (``variance=``). ``mm.cov.AR1("visit",
group="patient")`` is the same structure as the string ``"ar1(visit | patient)"``.
"""

from .correlation import AR1, ARMA, CAR1, CS, Correlation, Exp, Gaus, Lin, Ratio, Spher, Symm, Toep
from .variance import VarExp, Variance, VarIdent, VarPower

__all__ = ["AR1", "ARMA", "CAR1", "CS", "Correlation", "Exp", "Gaus", "Lin", "Ratio", "Spher",
           "Symm", "Toep", "Variance", "VarExp", "VarIdent", "VarPower"]
