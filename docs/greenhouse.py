"""The greenhouse experiment: a linear mixed model in matrix form.

Two soil-moisture levels (dry, wet) are the fixed treatment. Each level is randomly assigned
to two pots, so there are four pots, and the pots are a random sample of all the pots the
greenhouse could have used. One pot of each moisture level holds three seedlings, the other
two, so there are n = 10 seedlings. The response is seedling height (cm).

The model is

    y = X beta + Z u + e,    u ~ N(0, G),  e ~ N(0, R),  u and e independent,
    Var(y) = V = Z G Z' + R,

with G = sigma_p^2 I_4 (one random effect per pot) and R = sigma_e^2 I_10.

Run it with ``python docs/greenhouse.py``; ``main()`` returns the computed objects.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

import mixedmodels as mm

FORMULA = "height ~ moisture + (1 | pot)"
OVERPARAM_FORMULA = "height ~ alpha1 + alpha2 + (1 | pot)"
GLS_FORMULA = "height ~ moisture"
CS_WITHIN_POT = "cs(1 | pot)"


def negative_data() -> pd.DataFrame:
    """The same design with other heights: the two pots of each moisture level have nearly the
    same mean while the seedlings within a pot differ a lot, so that seedlings of one pot are
    less alike than seedlings of different pots (a negative within-pot correlation)."""
    return greenhouse_data().assign(
        height=[13.4, 15.6, 14.2, 12.8, 14.4, 18.1, 20.1, 18.8, 19.1, 17.3])


def greenhouse_data() -> pd.DataFrame:
    """Ten seedlings in four pots; heights in cm (made-up but plausible numbers)."""
    return pd.DataFrame({
        "seedling": np.arange(1, 11),
        "moisture": ["dry"] * 5 + ["wet"] * 5,
        "pot": [1, 1, 1, 2, 2, 3, 3, 3, 4, 4],
        "height": [14.2, 15.1, 13.6, 12.4, 13.0, 18.3, 19.6, 18.9, 16.7, 17.8],
    })


def show(title: str, obj, explanation: str = "") -> None:
    """Print a titled block: a short explanation, then the object."""
    print(f"\n== {title} ==")
    if explanation:
        print(explanation)
    print(obj)


def labelled(matrix, rows, columns, decimals: int = 4) -> pd.DataFrame:
    return pd.DataFrame(np.round(np.asarray(matrix, dtype=float), decimals),
                        index=rows, columns=columns)


def main() -> dict:
    """Fit the model, print each matrix with a short explanation, return the key objects."""
    with np.printoptions(precision=4, suppress=True, linewidth=100), \
            pd.option_context("display.width", 120, "display.max_columns", 20):
        return walk_through()


def walk_through() -> dict:
    df = greenhouse_data()
    show("The data", df.to_string(index=False),
         "Moisture is the fixed treatment; each pot holds seedlings of one moisture level.")

    # -- the full-rank fit: intercept + treatment contrast ---------------------------------------
    fit = mm.lmer(FORMULA, df, reml=True)
    show("The fit", repr(fit), f"{FORMULA!r} fitted by REML (the REML criterion is lme4's REMLcrit):")

    seedlings = [f"s{i}" for i in df["seedling"]]
    X = fit.X
    show("X as the package builds it", labelled(X, seedlings, fit.x_names, 0),
         "An intercept and one treatment contrast: 'moisturewet' is 1 for wet seedlings.\n"
         "The first level in sorted order ('dry') is the reference, as in R. rank(X) = "
         f"{np.linalg.matrix_rank(X)} = number of columns.")

    # -- the over-parameterized design mu + alpha_i ----------------------------------------------
    over = df.assign(alpha1=(df["moisture"] == "dry").astype(float),
                     alpha2=(df["moisture"] == "wet").astype(float))
    X_over = np.column_stack([np.ones(len(over)), over["alpha1"], over["alpha2"]])
    show("The over-parameterized X: y_ijk = mu + alpha_i + p_ij + e_ijk",
         labelled(X_over, seedlings, ["mu", "alpha1", "alpha2"], 0),
         "Three columns but rank(X) = "
         f"{np.linalg.matrix_rank(X_over)}: alpha1 + alpha2 = mu, so mu, alpha1, alpha2 are not\n"
         "separately estimable (only mu + alpha_i and alpha1 - alpha2 are).")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit_over = mm.lmer(OVERPARAM_FORMULA, over, reml=True)
    messages = [f"{w.category.__name__}: {w.message}" for w in caught]
    show(f"Fitting {OVERPARAM_FORMULA!r}", "\n".join(messages),
         "The package checks X for aliased columns, left to right, and drops each column that\n"
         "lies in the span of the columns before it (R's rule). Warnings raised:")
    dropped = tuple(fit_over.model.design.dropped)
    fitted_diff = float(np.max(np.abs(fit_over.fitted - fit.fitted)))
    print(f"dropped columns: {dropped}; kept: {fit_over.x_names}")
    print(f"fixef (over-parameterized fit): {fit_over.fixef.round(4).to_dict()}")
    print(f"fixef (full-rank fit):          {fit.fixef.round(4).to_dict()}")
    print("With alpha2 dropped, (Intercept) estimates mu + alpha2 (the wet mean) and alpha1\n"
          "estimates alpha1 - alpha2: the same model as the contrast coding, reparameterized.")
    print(f"max |fitted difference| = {fitted_diff:.2e}; REML criterion "
          f"{fit_over.objective:.6f} vs {fit.objective:.6f}")

    # -- Z and Z Z' ------------------------------------------------------------------------------
    pots = [f"pot{p}" for p in sorted(df["pot"].unique())]
    Z = fit.Z.toarray()
    show("Z (fit.Z, sparse, printed densely)", labelled(Z, seedlings, pots, 0),
         f"{Z.shape[0]} x {Z.shape[1]}: Z[k, j] = 1 when seedling k grows in pot j.")
    ZZt = Z @ Z.T
    show("Z Z'", labelled(ZZt, seedlings, seedlings, 0),
         "(Z Z')[k, l] = 1 when seedlings k and l share a pot: block diagonal, one block per pot.")

    # -- G, R and V ------------------------------------------------------------------------------
    vc = fit.varcorr
    sigma2_p = float(vc.loc[vc["group"] == "pot", "vcov"].iloc[0])
    sigma2_e = float(vc.loc[vc["group"] == "Residual", "vcov"].iloc[0])
    show("Variance components (fit.varcorr)", vc.round(4).to_string(index=False),
         f"sigma_p^2 = {sigma2_p:.4f} (between pots), sigma_e^2 = {sigma2_e:.4f} (residual).")
    G = fit.G.toarray()
    show("G = Var(u) = sigma_p^2 I_4", labelled(G, pots, pots))
    R = fit.R.toarray()
    show("R = Var(e) = sigma_e^2 I_10", labelled(R, seedlings, seedlings))
    V = fit.V.toarray()
    show("V = Var(y) = Z G Z' + R", labelled(V, seedlings, seedlings, 3),
         "Block diagonal: sigma_p^2 + sigma_e^2 on the diagonal, sigma_p^2 between seedlings\n"
         "of the same pot, 0 between pots (pots are independent).")
    for pot in sorted(df["pot"].unique()):
        idx = np.flatnonzero(df["pot"].to_numpy() == pot)
        print(f"  block for pot{pot} (seedlings {', '.join(seedlings[i] for i in idx)}):")
        print("   ", np.array2string(V[np.ix_(idx, idx)], precision=3).replace("\n", "\n    "))

    # -- intraclass correlation ------------------------------------------------------------------
    icc = sigma2_p / (sigma2_p + sigma2_e)
    i, j = 0, 1  # s1 and s2 are both in pot 1
    print("\n== Within-pot (intraclass) correlation ==")
    print(f"sigma_p^2 / (sigma_p^2 + sigma_e^2) = {sigma2_p:.4f} / ({sigma2_p:.4f} + "
          f"{sigma2_e:.4f}) = {icc:.4f}")
    print(f"V[s1, s2] / V[s1, s1] = {V[i, j]:.4f} / {V[i, i]:.4f} = {V[i, j] / V[i, i]:.4f}")
    print("Two seedlings in the same pot are correlated because they share the pot's effect.")

    # -- beta, u and the fitted values -----------------------------------------------------------
    beta, u = fit.beta, fit.u
    show("beta (GLS estimate of the fixed effects)", fit.fixef.round(4).to_string())
    show("u (BLUPs of the pot effects, aligned with Z's columns)",
         pd.Series(u, index=pots, name="u").round(4).to_string(),
         "Each u_j = sigma_p^2 / (sigma_e^2 + n_j sigma_p^2) * (sum of pot j's GLS residuals):\n"
         "the pot's mean residual shrunk towards 0, more so for the 2-seedling pots. Because\n"
         "the moisture indicators lie in the column space of X, the BLUPs of the two pots of\n"
         "each moisture level sum to 0.")
    Vinv = np.linalg.inv(V)
    y = fit.y
    beta_gls = np.linalg.solve(X.T @ Vinv @ X, X.T @ Vinv @ y)
    u_blup = G @ Z.T @ Vinv @ (y - X @ beta_gls)
    print("\nThe textbook formulas, computed densely from V:")
    print(f"  beta = (X' V^-1 X)^-1 X' V^-1 y   = {beta_gls}")
    print(f"  u    = G Z' V^-1 (y - X beta)     = {u_blup}")
    print(f"  max difference from fit.beta, fit.u: "
          f"{max(np.max(np.abs(beta_gls - beta)), np.max(np.abs(u_blup - u))):.2e}")
    fitted = X @ beta + Z @ u
    table = pd.DataFrame({"height": df["height"].to_numpy(), "X beta": X @ beta, "Z u": Z @ u,
                          "X beta + Z u": fitted, "fit.fitted": fit.fitted}, index=seedlings)
    show("Fitted values = X beta + Z u", table.round(4).to_string())
    print(f"max |X beta + Z u - fit.fitted| = {np.max(np.abs(fitted - fit.fitted)):.2e}")

    out = {"data": df, "fit": fit, "fit_over": fit_over, "X": X, "X_over": X_over, "Z": Z,
           "ZZt": ZZt, "G": G, "R": R, "V": V, "sigma2_p": sigma2_p, "sigma2_e": sigma2_e,
           "icc": icc, "beta": beta, "u": u, "fitted": fitted, "warnings": messages}
    out.update(r_side(df, fit, seedlings))
    return out


def r_side(df: pd.DataFrame, fit, seedlings) -> dict:
    """The same correlation within pots written on the R side (compound symmetry of the
    residuals, no random effect), and a data set where only the R side can express it."""
    # -- compound symmetry within pot: the same model --------------------------------------
    gls_fit = mm.gls(GLS_FORMULA, df, correlation=CS_WITHIN_POT)
    show("The same model on the R side", gls_fit.summary(),
         f"mm.gls({GLS_FORMULA!r}, df, correlation={CS_WITHIN_POT!r}): no random effect; the\n"
         "residuals of a pot are correlated, Psi_pot = (1 - rho) I + rho J (J all ones),\n"
         "R = sigma^2 Psi and V = R. Its summary:")
    rho = float(gls_fit.model.structure.parameters.sdcor(gls_fit.theta, gls_fit.sigma)[-1])
    V_gls = gls_fit.V.toarray()
    V = fit.V.toarray()
    print(f"\nREML criterion: gls {gls_fit.objective:.6f}, lmer {fit.objective:.6f}")
    print(f"fixef: gls {gls_fit.fixef.round(4).to_dict()}, lmer {fit.fixef.round(4).to_dict()}")
    print(f"sigma^2 (total variance, gls) = {gls_fit.sigma ** 2:.4f}; sigma_p^2 + sigma_e^2 "
          f"(lmer) = {V[0, 0]:.4f}")
    print(f"rho (gls) = {rho:.4f}; intraclass correlation (lmer) = {V[0, 1] / V[0, 0]:.4f}")
    print(f"max |V_gls - V_lmer| = {np.max(np.abs(V_gls - V)):.1e}")
    print("With rho = sigma_p^2 / (sigma_p^2 + sigma_e^2) and sigma^2 = sigma_p^2 + sigma_e^2,\n"
          "the two parameterizations give the same V whenever rho >= 0: the same likelihood,\n"
          "the same estimates and tests (up to the optimizers' tolerance).")

    # -- a negative within-pot correlation ------------------------------------------------------
    neg = negative_data()
    show("Other heights: pots alike, seedlings within a pot not",
         neg.assign(pot_mean=neg.groupby("pot")["height"].transform("mean").round(3))
         .to_string(index=False))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        g_side = mm.lmer(FORMULA, neg)
    r_side_fit = mm.gls(GLS_FORMULA, neg, correlation=CS_WITHIN_POT)
    vc = g_side.varcorr
    rho_neg = float(r_side_fit.model.structure.parameters.sdcor(r_side_fit.theta,
                                                                 r_side_fit.sigma)[-1])
    lower = float(r_side_fit.model.structure.parameters.sdcor_bounds()[0][-1])
    largest = int(neg.groupby("pot").size().max())
    print("\nG side: mm.lmer('height ~ moisture + (1 | pot)'):")
    print("  " + "; ".join(str(w.message).split(";")[0] for w in caught))
    print(f"  sigma_p^2 = {float(vc['vcov'].iloc[0]):.4f}, sigma_e^2 = "
          f"{float(vc['vcov'].iloc[1]):.4f}, REML criterion {g_side.objective:.4f}, "
          f"singular: {g_side.is_singular}")
    print("R side: mm.gls('height ~ moisture', correlation='cs(1 | pot)'):")
    print(f"  rho = {rho_neg:.4f} (its lower bound -1/(m - 1) = {lower:.4f}, m = {largest}), "
          f"sigma^2 = {r_side_fit.sigma ** 2:.4f}, REML criterion {r_side_fit.objective:.4f}, "
          f"singular: {r_side_fit.is_singular}")
    V_neg = r_side_fit.V.toarray()
    print("  V block of pot 1 (s1, s2, s3):")
    print("   ", np.array2string(V_neg[:3, :3], precision=4).replace("\n", "\n    "))
    print("On the G side the within-pot covariance is the variance sigma_p^2 of the pot effect,\n"
          "which cannot be negative: the fit stops on the boundary sigma_p^2 = 0 (singular).\n"
          "On the R side it is rho sigma^2, and Psi = (1 - rho) I + rho J stays positive definite\n"
          "for -1/(m - 1) < rho <= 1: a negative rho is a valid covariance, and a better fit.")
    return {"gls_fit": gls_fit, "V_gls": V_gls, "rho": rho, "negative_data": neg,
            "g_side": g_side, "r_side": r_side_fit, "rho_negative": rho_neg,
            "rho_lower_bound": lower, "g_side_warnings": [str(w.message) for w in caught]}


if __name__ == "__main__":
    main()
