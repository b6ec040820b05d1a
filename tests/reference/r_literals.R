# lme4 fits of formulas with R's literals and raw polynomials (names and estimates), for
# tests/test_formula_functions.py. Usage (from this folder): Rscript r_literals.R r_literals.json
suppressMessages({library(lme4); library(jsonlite)})
out_file <- commandArgs(trailingOnly = TRUE)[1]
d <- read.csv(file.path("..", "..", "src", "mixedmodels", "datasets", "data", "sleepstudy.csv"))
d$Subject <- factor(d$Subject)
formulas <- c("Reaction ~ poly(Days, 3, raw = TRUE) + (1 | Subject)",
              "Reaction ~ poly(Days, 2, raw = FALSE) + (1 | Subject)",
              "Reaction ~ poly(Days, degree = 2, raw = TRUE) + (Days | Subject)",
              "Reaction ~ factor(Days > 4) + (1 | Subject)")
out <- lapply(formulas, function(f) {
  m <- lmer(as.formula(f), d)
  list(formula = f, reml_criterion = REMLcrit(m), fixef = as.list(fixef(m)))
})
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE), out_file)
