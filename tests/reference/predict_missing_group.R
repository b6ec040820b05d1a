# lme4's predictions for new rows with a missing or new grouping level, for tests/test_predict.py.
# Usage (from this folder): Rscript predict_missing_group.R predict_missing_group.json
suppressMessages({library(lme4); library(jsonlite)})
out_file <- commandArgs(trailingOnly = TRUE)[1]
d <- read.csv(file.path("..", "..", "src", "mixedmodels", "datasets", "data", "sleepstudy.csv"))
d$Subject <- factor(d$Subject)
new <- data.frame(Days = c(5, 5, 2.5, 0), stringsAsFactors = FALSE)
new$Subject <- factor(c(NA, "308", NA, "999"), levels = c(levels(d$Subject), "999"))
out <- lapply(c("Reaction ~ Days + (Days | Subject)", "Reaction ~ Days + (1 | Subject)"),
  function(f) {
    m <- lmer(as.formula(f), d, REML = TRUE)
    refused <- inherits(try(predict(m, new), silent = TRUE), "try-error")
    list(formula = f, days = new$Days, subject = as.character(new$Subject),
         error_without_new_levels = refused,
         allow_new_levels = unname(predict(m, new, allow.new.levels = TRUE)))
  })
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE), out_file)
