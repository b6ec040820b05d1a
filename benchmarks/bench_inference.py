"""Scale of the fixed-effects tests: Satterthwaite and Kenward-Roger df for every coefficient
on 100,000 rows with two crossed grouping factors (3,000 and 2,000 levels).

Neither method forms an n x n matrix: Satterthwaite differentiates n-free functions of theta,
Kenward-Roger works with q x q and q x p matrices. Run: python benchmarks/bench_inference.py
"""

import time
import warnings

import numpy as np
import pandas as pd

import mixedmodels as mm
from mixedmodels.linalg.compiled import load_kernels


def crossed_data(n=100_000, levels1=3000, levels2=2000, seed=7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g1, g2 = rng.integers(0, levels1, n), rng.integers(0, levels2, n)
    x = rng.normal(size=n)
    y = (1 + 0.5 * x + rng.normal(0, 0.5, levels1)[g1] + rng.normal(0, 0.3, levels2)[g2]
         + rng.normal(0, 1, n))
    return pd.DataFrame({"y": y, "x": x, "trt": rng.choice(["a", "b", "c"], n), "g1": g1,
                         "g2": g2})


def main() -> None:
    load_kernels()  # a warm process
    data = crossed_data()
    warnings.simplefilter("ignore")
    start = time.perf_counter()
    fit = mm.lmer("y ~ x + trt + (1 | g1) + (1 | g2)", data)
    fitted = time.perf_counter()
    satterthwaite = fit.coef_table("satterthwaite")
    after_satterthwaite = time.perf_counter()
    kenward_roger = fit.coef_table("kenward-roger")
    after_kr = time.perf_counter()
    anova = fit.test(np.eye(4)[2:], ddf="kenward-roger")
    print(f"| step | seconds |\n|---|---|\n| fit (n={fit.nobs}) | {fitted - start:.1f} |")
    print(f"| Satterthwaite, all coefficients | {after_satterthwaite - fitted:.1f} |")
    print(f"| Kenward-Roger, all coefficients | {after_kr - after_satterthwaite:.1f} |")
    print()
    print(pd.concat({"satterthwaite": satterthwaite, "kenward-roger": kenward_roger}, axis=1)
          .round(4).to_string())
    print(f"\nKenward-Roger F test of trt: {anova}")


if __name__ == "__main__":
    main()
