# lmerTest's anova(m, type = 1 | 2 | 3) with Satterthwaite and Kenward-Roger (REML fits only:
# pbkrtest's method needs them) for tests/test_contrast_codings.py: models with and without an
# intercept, numeric and factor terms, multi-df terms, a factor-by-numeric interaction, and
# factors coded by C(x, contr.sum | contr.helmert | contr.poly | contr.treatment | contr.SAS).
# Writes, per model: the formula, the data set, REML or ML, lme4's fixed-effect names and
# estimates, the anova tables, and the contrast matrices lmerTest's anova tests (its
# get_contrasts_type1, get_contrasts_type2_unfolded and get_contrasts_type3). The two case data sets are the CSV files in cases/; the
# simulated one is generated here (seeded, rounded to 6 decimals so that R and Python fit
# exactly the same numbers) and stored in the JSON, with and without the cell (a3, b2).
# Usage (from tests/reference): Rscript contrast_codings.R contrast_codings.json
suppressMessages({library(lmerTest); library(pbkrtest); library(jsonlite)})
out_file <- commandArgs(trailingOnly = TRUE)[1]

set.seed(20240917)
n <- 132
sim <- data.frame(g = sprintf("g%02d", rep(1:12, each = 11)),
                  A = sample(c("a1", "a2", "a3"), n, replace = TRUE, prob = c(0.5, 0.3, 0.2)),
                  B = sample(c("b1", "b2"), n, replace = TRUE, prob = c(0.6, 0.4)),
                  x = round(runif(n, 0, 4), 6), stringsAsFactors = FALSE)
u <- rnorm(12, 0, 1.2)
v <- rnorm(12, 0, 0.4)
k <- as.integer(factor(sim$g))
sim$y <- round(5 + c(a1 = 0, a2 = 0.8, a3 = -0.5)[sim$A] + 0.6 * (sim$B == "b2") +
               (0.7 + v[k]) * sim$x - 0.3 * sim$x * (sim$A == "a3") + u[k] + rnorm(n), 6)

as_factors <- function(d) {
  for (v in names(d)) if (is.character(d[[v]])) d[[v]] <- factor(d[[v]])
  d
}
datasets <- list(
  split_plot = as_factors(read.csv(file.path("cases", "split_plot_noint.csv"))),
  sleepstudy_period = as_factors(read.csv(file.path("cases", "sleepstudy_period.csv"))),
  sim = as_factors(sim),
  sim_empty_cell = as_factors(sim[!(sim$A == "a3" & sim$B == "b2"), ]))

models <- list(
  list(id = "split_plot_noint_ml", data = "split_plot", REML = FALSE,
       formula = "y ~ 0 + a * b + (1 | block) + (1 | block:a)"),
  list(id = "split_plot_noint", data = "split_plot", REML = TRUE,
       formula = "y ~ 0 + a * b + (1 | block) + (1 | block:a)"),
  list(id = "split_plot_sum_poly", data = "split_plot", REML = TRUE,
       formula = "y ~ C(a, contr.poly) * C(b, contr.sum) + (1 | block) + (1 | block:a)"),
  list(id = "period_sum", data = "sleepstudy_period", REML = TRUE,
       formula = "Reaction ~ C(period, contr.sum) + Days + (1 | Subject)"),
  list(id = "period_sum_ml", data = "sleepstudy_period", REML = FALSE,
       formula = "Reaction ~ C(period, contr.sum) + Days + (1 | Subject)"),
  list(id = "period_helmert_noint", data = "sleepstudy_period", REML = TRUE,
       formula = "Reaction ~ 0 + C(period, contr.helmert) + Days + (1 | Subject)"),
  list(id = "period_poly_by_days", data = "sleepstudy_period", REML = TRUE,
       formula = "Reaction ~ C(period, contr.poly) * Days + (Days | Subject)"),
  list(id = "period_treatment", data = "sleepstudy_period", REML = TRUE,
       formula = "Reaction ~ C(period, contr.treatment) + Days + (1 | Subject)"),
  list(id = "period_sas_by_days", data = "sleepstudy_period", REML = TRUE,
       formula = "Reaction ~ C(period, contr.SAS) * Days + (1 | Subject)"),
  list(id = "sim_single_factor", data = "sim", REML = TRUE, formula = "y ~ A + (1 | g)"),
  list(id = "sim_single_factor_noint", data = "sim", REML = TRUE,
       formula = "y ~ 0 + A + (1 | g)"),
  list(id = "sim_factor_by_numeric", data = "sim", REML = TRUE,
       formula = "y ~ A * x + B + (x | g)"),
  list(id = "sim_factor_by_numeric_noint", data = "sim", REML = TRUE,
       formula = "y ~ 0 + A * x + B + (1 | g)"),
  list(id = "sim_sum_by_factor", data = "sim", REML = TRUE,
       formula = "y ~ C(A, contr.sum) * B + x + (1 | g)"),
  list(id = "sim_helmert_by_numeric_noint", data = "sim", REML = FALSE,
       formula = "y ~ 0 + C(A, contr.helmert) * x + (1 | g)"),
  list(id = "sim_poly_numeric", data = "sim", REML = TRUE,
       formula = "y ~ C(A, contr.poly) + poly(x, 2) + B + (1 | g)"),
  list(id = "sim_sum_empty_cell", data = "sim_empty_cell", REML = TRUE,
       formula = "y ~ C(A, contr.sum) * C(B, contr.sum) + (1 | g)"),
  list(id = "sim_three_way", data = "sim", REML = TRUE,
       formula = "y ~ C(A, contr.helmert) * C(B, contr.sum) * x + (1 | g)")
)

# lme4's default optimizer stops early on some models; as for the other references, the
# better of the default and a tight-tolerance fit is used
tight <- lmerControl(optimizer = "nloptwrap", calc.derivs = FALSE,
                     optCtrl = list(ftol_abs = 1e-15, ftol_rel = 1e-15, xtol_abs = 1e-12,
                                    xtol_rel = 1e-12, maxeval = 1e5))
criterion <- function(m) if (isREML(m)) REMLcrit(m) else deviance(m)
contrasts_json <- function(Llist) lapply(Llist, function(L)
  unname(lapply(seq_len(nrow(L)), function(i) unname(L[i, ]))))
table_json <- function(a) lapply(rownames(a), function(r)
  list(term = r, F = a[r, "F value"], numdf = a[r, "NumDF"], dendf = a[r, "DenDF"],
       p = a[r, "Pr(>F)"]))

out <- lapply(models, function(spec) {
  d <- datasets[[spec$data]]
  f <- as.formula(spec$formula)
  m <- lmer(f, d, REML = spec$REML, control = tight)
  m_default <- lmer(f, d, REML = spec$REML)
  if (criterion(m_default) < criterion(m)) m <- m_default
  ddfs <- if (spec$REML) c("Satterthwaite", "Kenward-Roger") else "Satterthwaite"
  tables <- list()
  for (type in c("1", "2", "3")) for (ddf in ddfs)
    tables[[paste0("type", type, "_", ddf)]] <- table_json(anova(m, type = type, ddf = ddf))
  list(id = spec$id, data = spec$data, formula = spec$formula, REML = spec$REML,
       criterion = criterion(m), x_names = names(fixef(m)), fixef = unname(fixef(m)),
       tables = tables,
       contrasts = list(type1 = contrasts_json(lmerTest:::get_contrasts_type1(m)),
                        type2 = contrasts_json(lmerTest:::get_contrasts_type2_unfolded(m)),
                        type3 = contrasts_json(lmerTest:::get_contrasts_type3(m))))
})

data_json <- lapply(datasets[c("sim", "sim_empty_cell")], function(d)
  lapply(d, function(v) if (is.factor(v)) as.character(v) else v))
writeLines(toJSON(list(generator = "tests/reference/contrast_codings.R",
                       lmerTest = as.character(packageVersion("lmerTest")),
                       lme4 = as.character(packageVersion("lme4")),
                       pbkrtest = as.character(packageVersion("pbkrtest")),
                       R = R.version.string, data = data_json, models = out),
                  auto_unbox = TRUE, digits = NA, pretty = TRUE), out_file)
