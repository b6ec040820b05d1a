# lme4's checks of observations against levels and random effects (check.nobs.vs.nlev,
# check.nobs.vs.nRE), for tests/test_bad_input.py.
# Usage (from this folder): Rscript nobs_checks.R nobs_checks.json
suppressMessages({library(lme4); library(jsonlite)})
out_file <- commandArgs(trailingOnly = TRUE)[1]
d <- read.csv(file.path("..", "..", "src", "mixedmodels", "datasets", "data", "sleepstudy.csv"))
d$Subject <- factor(d$Subject)
d$id <- factor(seq_len(nrow(d)))
cases <- list(
  list(days = c(0, 1), formula = "Reaction ~ Days + (Days | Subject)"),
  list(days = c(0, 1), formula = "Reaction ~ Days + (Days || Subject)"),
  list(days = c(0, 1, 2), formula = "Reaction ~ Days + (Days | Subject)"),
  list(days = 0:9, formula = "Reaction ~ Days + (1 | id)"),
  list(days = c(0, 1), formula = "Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)"))
out <- lapply(cases, function(case) {
  rows <- d[d$Days %in% case$days, ]
  fit <- try(suppressMessages(lmer(as.formula(case$formula), rows)), silent = TRUE)
  refused <- inherits(fit, "try-error")
  list(days = case$days, formula = case$formula, refused = refused,
       message = if (refused) conditionMessage(attr(fit, "condition")) else NULL,
       reml_criterion = if (refused) NULL else REMLcrit(fit))
})
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE), out_file)
