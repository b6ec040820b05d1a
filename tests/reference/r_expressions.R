# R's values of 250 random expressions of R's operators and functions (+ - * / ^ %% %/%,
# comparisons, & | !, %in%, abs, sqrt, exp, log, pmin, ifelse) on the columns of
# data/logic.csv (x, h, k, the text f, and the logicals b and c, named cc here so that c()
# stays R's function), for tests/test_formula_functions.py: each formula's call must give these
# values. The expressions (r_expressions_input.json) were drawn at random from a small
# grammar, keeping those whose values are all finite (R's integer arithmetic, -FALSE is 0L
# where a double's is -0, and R's NA comparisons of NaN differ from this package's doubles).
# Usage (from this folder): Rscript r_expressions.R r_expressions.json
suppressMessages(library(jsonlite))
out_file <- commandArgs(trailingOnly = TRUE)[1]
d <- read.csv(file.path("data", "logic.csv"))
names(d)[names(d) == "c"] <- "cc"
exprs <- fromJSON("r_expressions_input.json")
out <- lapply(exprs, function(e) {
  v <- with(d, eval(parse(text = e)))
  if (length(v) == 1) v <- rep(v, nrow(d))
  list(expr = e, values = as.numeric(v))
})
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE), out_file)
