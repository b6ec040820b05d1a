# lme4 fits of sleepstudy with functions in the formula (factor, sqrt, log1p, poly, scale, ...),
# for tests/test_formula_functions.py. Usage: Rscript formula_functions.R OUT.json
suppressMessages({library(lme4); library(lmerTest); library(jsonlite)})
out_file <- commandArgs(trailingOnly = TRUE)[1]
d <- read.csv(file.path("..", "..", "src", "mixedmodels", "datasets", "data", "sleepstudy.csv"))
d$Subject <- factor(d$Subject)
formulas <- c("Reaction ~ factor(Days) + (1 | Subject)",
              "Reaction ~ log1p(Days) * sqrt(Days) + (1 | Subject)",
              "sqrt(Reaction) ~ Days + (sqrt(Days) | Subject)",
              "log10(Reaction) ~ abs(Days - 4.5) + (1 | Subject)",
              "Reaction ~ poly(Days, 2) + (1 | Subject)",
              "Reaction ~ scale(Days) + (1 | Subject)")
out <- lapply(formulas, function(f) {
  m <- lmerTest::lmer(as.formula(f), d)
  a <- anova(m, type = 3)
  list(formula = f, criterion = REMLcrit(m), fixef = as.list(fixef(m)),
       se = as.list(sqrt(diag(as.matrix(vcov(m))))),
       anova = lapply(rownames(a), function(r) list(term = r, F = a[r, "F value"],
                                                   dendf = a[r, "DenDF"])))
})
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE), out_file)
