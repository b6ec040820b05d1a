"""A residual structure on the partitions of a Dask DataFrame: its groups, and what it learns.

A correlation structure correlates the rows of a group (a patient's visits): Psi is
block-diagonal by group, and A(delta) = [Z X y]' Psi(delta)^-1 [Z X y] is a sum over the
groups, hence over the partitions when each partition holds whole groups. The fit needs that,
and says so otherwise: the schema pass records each partition's groups (``ResidualShare``),
and a group with rows in two partitions is a ``DataError`` that names the column, the group
and the partitions, and the fix (``ddf.shuffle(on=column)``). A variance function alone
(Psi diagonal) asks nothing of the partitions.

What the structures learn from all the rows (a variance function's strata and scale, the
slots of ``symm`` and ``toep``, car1's typical gap, exp's extent, the largest group of
``cs``) is learnt in the same pass from a few rows of each partition
(``covariance.residual_model.Learning``); each partition then binds its own rows to the
whole data's structures (``partition_residual``), as the in-memory fit binds all of them.

What comes back to the client from this pass: each partition's groups' labels (as many as
the groups, as a grouping factor's levels do), the strata, and the positions the correlation
structure learns from: none for most, two rows for ``exp``, the distinct slots of ``symm``
and ``toep``, the distinct times of ``car1`` (refused beyond ``MAX_LEARNT_POSITIONS``, where
they would be as many as the rows).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ..covariance.residual_model import Learning, ResidualModel, ResidualParameters
from ..design.build import Design
from ..errors import DataError

__all__ = ["ResidualShare", "partition_residual"]

#: the label of the one group of a correlation structure without "| group"
ALL_ROWS = "(all rows)"
#: distinct positions a correlation structure may learn from (car1's times)
MAX_LEARNT_POSITIONS = 100_000


@dataclass(frozen=True, eq=False)
class ResidualShare:
    """A residual structure's share of the schema pass, added over partitions with ``+``.

    Attributes:
        learning: what the structures learn from the complete rows (``Learning``).
        groups: each partition's distinct groups of the correlation structure: columns
            "group" (the label) and "partition" (its index); empty without one.
    """

    learning: Learning
    groups: pd.DataFrame

    @classmethod
    def of(cls, frame: pd.DataFrame, correlation, variance, index: int) -> "ResidualShare":
        """The share of partition ``index``, of its complete rows ``frame`` (not empty).

        Raises:
            DataError: rows the structures refuse (as in memory: ``ResidualModel``).
        """
        learning = Learning.of(correlation, variance, frame)
        labels = pd.Series([], dtype=object)
        if correlation is not None:
            labels = (frame[correlation.group].drop_duplicates() if correlation.group
                      else pd.Series([ALL_ROWS]))
        groups = pd.DataFrame({"group": labels.to_numpy(), "partition": index})
        return cls(_checked(learning), groups)

    def __add__(self, other: "ResidualShare | None") -> "ResidualShare":
        if other is None:
            return self
        return ResidualShare(_checked(self.learning + other.learning),
                             pd.concat([self.groups, other.groups], ignore_index=True))

    def specifies(self, correlation, variance) -> bool:
        """Was the share computed for these structures (as given, not bound; a variance
        function's strata in the order given, if one was)?"""
        ours = self.learning.variance
        return (self.learning.correlation == correlation and ours == variance
                and getattr(ours, "levels", None) == getattr(variance, "levels", None))

    def parameters(self) -> ResidualParameters:
        """The structures bound to all the rows (``Learning.parameters``).

        Raises:
            DataError: a group of the correlation structure has rows in two partitions.
        """
        self._check_whole_groups()
        return self.learning.parameters()

    def _check_whole_groups(self) -> None:
        spanning = self.groups["group"].duplicated(keep=False).to_numpy()
        if not spanning.any():
            return
        column = self.learning.correlation.group
        first = self.groups["group"].to_numpy()[spanning][0]
        partitions = sorted(self.groups.loc[self.groups["group"] == first, "partition"])
        shown = ", ".join(map(str, partitions[:5])) + (" ..." if len(partitions) > 5 else "")
        if column is None:
            raise DataError(
                f"the residual correlation structure has no '| group': all rows are one "
                f"group, and they are in {len(partitions)} partitions (of {shown}); a fit "
                "over partitions needs each group's rows in one partition. Give a column "
                "within which the residuals are correlated, e.g. ar1(visit | patient)")
        count = self.groups.loc[spanning, "group"].nunique()
        label = first.item() if hasattr(first, "item") else first
        raise DataError(
            f"the residual correlation structure correlates the rows of each {column}, and "
            f"a fit over partitions needs each {column}'s rows in one partition: {column} "
            f"{label!r} has rows in partitions {shown} ({count} of the {column} groups "
            f"span{'s' if count == 1 else ''} partitions). Repartition the data by "
            f"{column!r}: ddf = ddf.shuffle(on={column!r}) (or "
            f"ddf.set_index({column!r}, drop=False), which "
            f"also sorts), or write the files so that each {column}'s rows are in one file")


def _checked(learning: Learning) -> Learning:
    """``learning``, unless it keeps too many positions (``MAX_LEARNT_POSITIONS``).

    Raises:
        DataError: naming the column and what to do.
    """
    if len(learning.positions) <= MAX_LEARNT_POSITIONS:
        return learning
    columns = ", ".join(repr(name) for name in learning.correlation.positions)
    raise DataError(
        f"the correlation structure learns from the distinct values of {columns} of all the "
        f"rows (car1: the typical gap between times), and these data have more than "
        f"{MAX_LEARNT_POSITIONS:,}: on partitions they would all come back to this process. "
        "Round the times (e.g. to minutes), or fit the data in memory")


def partition_residual(design: Design, parameters: ResidualParameters) -> ResidualModel:
    """The residual structure of a partition's rows (its ``design``, in the schema's terms):
    the whole data's structures ``parameters`` bound to these rows, with their prior weights,
    as the in-memory model binds all of them."""
    weights = design.weights if design.weighted else None
    return ResidualModel(parameters.correlation, parameters.variance, design.frame, weights,
                         learn=False)
