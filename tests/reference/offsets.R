# lme4 fits with offset() terms, for tests/test_offsets.py. Usage: Rscript offsets.R OUT.json
suppressMessages({library(lme4); library(jsonlite)})
out_file <- commandArgs(trailingOnly = TRUE)[1]
d <- read.csv(file.path("..", "..", "src", "mixedmodels", "datasets", "data", "sleepstudy.csv"))
d$Subject <- factor(d$Subject)
new <- data.frame(Days = c(0, 4.5, 9), Subject = factor(c("308", "330", "372"), levels = levels(d$Subject)))
formulas <- c("Reaction ~ Days + offset(Days) + (1 | Subject)",
              "Reaction ~ Days + offset(2 * Days) + offset(log(Days + 1)) + (Days | Subject)",
              "Reaction ~ 1 + offset(10 * Days) + (1 | Subject)")
out <- lapply(formulas, function(f) {
  fits <- lapply(c(TRUE, FALSE), function(reml) lmer(as.formula(f), d, REML = reml))
  m <- fits[[1]]
  list(formula = f, reml_criterion = REMLcrit(m), ml_deviance = deviance(fits[[2]]),
       fixef = as.list(fixef(m)), se = as.list(sqrt(diag(as.matrix(vcov(m))))),
       sigma = sigma(m), fitted_head = unname(head(fitted(m), 12)),
       resid_head = unname(head(residuals(m), 12)),
       predict_new = unname(predict(m, newdata = new)),
       predict_new_population = unname(predict(m, newdata = new, re.form = NA)))
})
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE), out_file)
