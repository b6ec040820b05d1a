"""The facade of fits of Dask DataFrames: ``PartitionedFit`` (``LmmFit``'s numbers, computed
from the cross-products summed over the partitions) and the stages that make it.

``lmer`` and ``gls`` (``result``) come here for a Dask DataFrame; this module, and the
``partitioned`` layer with it, loads then.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from .diagnostics.predict import predict
from .partitioned import rows as partitioned_rows
from .partitioned.bootstrap import bootstrap as partitioned_bootstrap
from .partitioned.model import PartitionedGls as _PartitionedGlsStages
from .partitioned.model import PartitionedModel as _PartitionedStages
from .result import LmmFit
from .validate import is_dask_frame, keyword_hints

__all__ = ["PartitionedFit", "PartitionedGls", "PartitionedModel"]


@dataclass(frozen=True, eq=False, repr=False)  # repr=False: LmmFit's __repr__
class PartitionedFit(LmmFit):
    """The fit of a Dask DataFrame: ``LmmFit``'s numbers, computed from the cross-products;
    the per-row results are lazy Dask collections computed on the data's partitions
    (``partitioned.rows``); what needs every row at once refuses, and says why."""

    def resid(self, kind: str = "response", scaled: bool = False,
              na_action: str = "omit"):
        """Residuals (see ``LmmFit.resid``), a lazy Dask series with the data's partitions."""
        return partitioned_rows.residuals(self, kind, scaled, na_action)

    def fitted_values(self, kind: str = "conditional", na_action: str = "omit"):
        """Fitted values (see ``LmmFit.fitted_values``), a lazy Dask series."""
        return partitioned_rows.fitted_values(self, kind, na_action)

    @keyword_hints
    def predict(self, newdata=None, include_random=True, new_levels: str = "error",
                interval=None, level: float = 0.95, na_action: str = "omit"):
        """Predictions (see ``LmmFit.predict``): for a Dask DataFrame (the fitted data when
        ``newdata`` is None), a lazy Dask series (DataFrame with ``interval``); for a pandas
        DataFrame, in memory."""
        options = {"include_random": include_random, "new_levels": new_levels,
                   "interval": interval, "level": level}
        if newdata is not None and not is_dask_frame(newdata):
            return predict(self, newdata, na_action=na_action, **options)
        return partitioned_rows.predictions(self, newdata, na_action, **options)

    @keyword_hints
    def simulate(self, n: int = 1, seed=None):
        """n simulated responses (see ``partitioned.rows.simulations``): a lazy Dask
        DataFrame with columns sim_1 ... sim_n."""
        return partitioned_rows.simulations(self, n, seed)

    @keyword_hints
    def profile(self, level: float = 0.99, points: int = 12, executor=None) -> pd.DataFrame:
        """Profile zeta traces (see ``LmmFit.profile``)."""
        self._check_profile()
        return super().profile(level, points, executor)

    def confint(self, method: str = "profile", level: float = 0.95, executor=None,
                parameters=None, **bootstrap_options):
        """Confidence intervals (see ``LmmFit.confint``)."""
        if method == "profile":
            self._check_profile()
        return super().confint(method, level, executor, parameters, **bootstrap_options)

    def _check_profile(self) -> None:
        """A profile needs thousands of evaluations of the deviance: refused where each is a
        pass over the data (a residual structure without marginal pieces)."""
        if getattr(self.model.system, "passes_per_evaluation", False):
            raise NotImplementedError(
                "the profile of this Dask fit would take a pass over the data at each of its "
                "thousands of points: its residual structure's cross-products are formed on "
                "the partitions for each value of its parameters (they have no marginal "
                "pieces: more than one random-effects factor, or groups that are not its "
                "levels). Use confint(method='wald')")

    def _needs_rows(self, what: str):
        raise NotImplementedError(
            f"{what} needs every row of the data at once, which a model of a Dask DataFrame "
            "does not hold; fit a sample of the rows in memory (mm.lmer(formula, "
            "ddf.compute())) for it")

    def leverage(self, na_action: str = "omit"):
        self._needs_rows("fit.leverage()")

    def cooks_distance(self, na_action: str = "omit", method: str = "deletion"):
        self._needs_rows("fit.cooks_distance()")

    def influence_groups(self, group: str, progress: bool = True, executor=None):
        self._needs_rows("fit.influence_groups()")

    def ranova(self, reduce_terms: bool = True):
        self._needs_rows("fit.ranova()")

    def refit(self, y):
        self._needs_rows("fit.refit(y)")

    @keyword_hints
    def bootstrap(self, n: int, seed=None, progress: bool = True, n_jobs: int = 1,
                  level: float = 0.95, executor=None):
        """Parametric bootstrap (see ``partitioned.bootstrap``): the responses are simulated
        and their cross-products summed on the partitions, the refits run here, from the
        cross-products (``n_jobs`` and ``executor`` do not apply)."""
        if n_jobs != 1 or executor is not None:
            raise ValueError("the bootstrap of a Dask fit simulates on the data's partitions "
                             "and refits from the cross-products in this process: leave "
                             "n_jobs and executor out")
        return partitioned_bootstrap(self, n, seed=seed, progress=progress, level=level)


class PartitionedModel(_PartitionedStages):
    """The stages of a model of a Dask DataFrame (``partitioned.model.PartitionedModel``)
    whose ``fit()`` is a ``PartitionedFit``."""

    result_type = PartitionedFit


class PartitionedGls(_PartitionedGlsStages):
    """The stages of ``gls`` of a Dask DataFrame (``partitioned.model.PartitionedGls``) whose
    ``fit()`` is a ``PartitionedFit``."""

    result_type = PartitionedFit
