# lme4's fits of random-slope models whose optimum is on the boundary (correlation +/-1: a zero
# diagonal entry of theta), for tests/test_boundary.py. The data are cases/boundary_slope_*.csv
# (15 groups of 8, intercept and slope drawn perfectly correlated).
# Usage (from this folder): Rscript boundary_fits.R boundary_fits.json
suppressMessages({library(lme4); library(jsonlite)})
out_file <- commandArgs(trailingOnly = TRUE)[1]
files <- sort(Sys.glob(file.path("cases", "boundary_slope_*.csv")))
out <- lapply(files, function(path) {
  d <- read.csv(path)
  m <- suppressMessages(lmer(y ~ x + (x | g), d, REML = TRUE))
  list(data = basename(path), formula = "y ~ x + (x | g)", theta = unname(getME(m, "theta")),
       reml_criterion = REMLcrit(m), is_singular = isSingular(m))
})
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE), out_file)
