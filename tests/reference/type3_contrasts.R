# Reference type III contrasts and F tests from lmerTest for tests/test_contrasts.py.
# Writes tests/reference/type3_contrasts.json with, per model: the formula, the data set it uses,
# the columns of X, the REML criterion, fixef and vcov, lmerTest:::get_contrasts_type3(model) and anova(model, type = 3).
# The simulated data sets are generated here (seeded, rounded to 6 decimals so that R and
# Python fit exactly the same numbers) and stored in the JSON.
# Usage (from the repository root): Rscript tests/reference/type3_contrasts.R [DATA_DIR [OUT]]
suppressMessages({ library(lmerTest); library(jsonlite) })
args <- commandArgs(trailingOnly = TRUE)
data_dir <- if (length(args) >= 1) args[1] else "src/mixedmodels/datasets/data"
out_json <- if (length(args) >= 2) args[2] else "tests/reference/type3_contrasts.json"

orthodont <- read.csv(file.path(data_dir, "Orthodont.csv"), stringsAsFactors = TRUE)

set.seed(20240611)
n <- 150
sim <- data.frame(
  g = sprintf("g%02d", rep(1:15, each = 10)),
  A = sample(c("a1", "a2"), n, replace = TRUE, prob = c(0.6, 0.4)),
  B = sample(c("b1", "b2", "b3"), n, replace = TRUE, prob = c(0.5, 0.3, 0.2)),
  x = round(rnorm(n, 2, 1), 6),
  z = round(runif(n, -1, 1), 6),
  stringsAsFactors = FALSE
)
u <- rnorm(15, 0, 1.5)
sim$y <- round(10 + 0.8 * sim$x - 0.5 * sim$z + 0.3 * sim$x * sim$z + 0.2 * sim$x^2 +
               1.0 * (sim$A == "a2") + c(b1 = 0, b2 = -0.7, b3 = 1.2)[sim$B] +
               0.6 * (sim$A == "a2") * (sim$B == "b3") + 0.4 * sim$x * (sim$A == "a2") +
               u[as.integer(factor(sim$g))] + rnorm(n), 6)
sim_empty <- sim[!(sim$A == "a2" & sim$B == "b3"), ]  # one empty cell
as_factors <- function(d) { for (v in names(d)) if (is.character(d[[v]])) d[[v]] <- factor(d[[v]]); d }
datasets <- list(orthodont = orthodont, sim = as_factors(sim), sim_empty = as_factors(sim_empty))

models <- list(
  list(id = "orthodont", data = "orthodont", formula = "distance ~ age * Sex + (age | Subject)"),
  list(id = "factorial_unbalanced", data = "sim", formula = "y ~ A * B + (1 | g)"),
  list(id = "numeric_by_factor_quadratic", data = "sim", formula = "y ~ x * A + I(x^2) + (1 | g)"),
  list(id = "factor_within_factor", data = "sim", formula = "y ~ A + A:B + (1 | g)"),
  list(id = "slope_within_factor", data = "sim", formula = "y ~ A + x:A + (1 | g)"),
  list(id = "no_intercept", data = "sim", formula = "y ~ 0 + A + x + (1 | g)"),
  list(id = "three_way", data = "sim", formula = "y ~ A * B * x + (1 | g)"),
  list(id = "numeric_by_numeric", data = "sim", formula = "y ~ x * z + B + (1 | g)"),
  list(id = "empty_cell", data = "sim_empty", formula = "y ~ A * B + (1 | g)"),
  list(id = "no_intercept_interaction", data = "sim", formula = "y ~ 0 + A * B + (1 | g)"),
  list(id = "interaction_without_margin", data = "sim", formula = "y ~ A * B - A + (1 | g)"),
  list(id = "function_of_numeric", data = "sim", formula = "y ~ log(x + 5) * A + z + (1 | g)"),
  list(id = "single_term", data = "sim", formula = "y ~ B + (1 | g)")
)

tight <- lmerControl(optimizer = "nloptwrap", calc.derivs = FALSE,
                     optCtrl = list(ftol_abs = 1e-15, ftol_rel = 1e-15, xtol_abs = 1e-12,
                                    xtol_rel = 1e-12, maxeval = 1e5))

matrix_json <- function(L) list(rows = rownames(L), columns = colnames(L),
                                values = unname(lapply(seq_len(nrow(L)), function(i) L[i, ])))

out_models <- lapply(models, function(m) {
  fit <- suppressMessages(lmer(as.formula(m$formula), datasets[[m$data]], control = tight))
  contrasts <- suppressMessages(lmerTest:::get_contrasts_type3(fit))
  table <- suppressMessages(anova(fit, type = 3))
  list(id = m$id, data = m$data, formula = m$formula,
       x_names = colnames(model.matrix(fit)), REMLcrit = REMLcrit(fit),
       fixef = unname(fixef(fit)), vcov = unname(lapply(1:ncol(vcov(fit)), function(j) as.matrix(vcov(fit))[j, ])),
       contrasts = lapply(contrasts, matrix_json),
       anova = list(term = rownames(table), F = table[["F value"]],
                    NumDF = table[["NumDF"]], DenDF = table[["DenDF"]]))
})
names(out_models) <- vapply(models, `[[`, "", "id")

data_json <- lapply(datasets[c("sim", "sim_empty")], function(d)
  lapply(d, function(v) if (is.factor(v)) as.character(v) else v))

writeLines(toJSON(list(generator = "tests/reference/type3_contrasts.R",
                       lmerTest = as.character(packageVersion("lmerTest")),
                       lme4 = as.character(packageVersion("lme4")),
                       R = R.version.string,
                       data = data_json, models = out_models),
                  auto_unbox = TRUE, digits = NA, pretty = TRUE), out_json)
