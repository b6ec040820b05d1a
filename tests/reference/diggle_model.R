# Reference fit for a random intercept, an AR(1) process and a nugget on the same subjects
# (Diggle's model), for tests/test_structured_g.py. R is a development tool only: the tests read
# diggle_model.json and data/diggle.csv, and never run R.
#
# Usage (from this folder):  Rscript diggle_model.R
# In mixedmodels the model is y ~ visit + (1 | id) + ar1(0 + factor(visit) | id): the intercept
# term and the AR(1) term share a grouping factor, and the intercept column is the sum of the
# visit indicators, yet the three variances are identified (the AR(1) covariances decay with
# the lag, the intercept's do not, the nugget is on the diagonal only). In nlme the same model
# is a random intercept with corExp(nugget = TRUE) on integer visits: correlation
# (1 - nugget) exp(-|lag| / range) within a subject, i.e. AR(1) with rho = exp(-1 / range).
suppressMessages({library(nlme); library(jsonlite)})
set.seed(20261202)
rows <- list()
for (i in 1:200) {
  b <- rnorm(1, 0, 1.5)
  e <- numeric(5); e[1] <- rnorm(1)
  for (t in 2:5) e[t] <- 0.5 * e[t - 1] + sqrt(0.75) * rnorm(1)
  rows[[i]] <- data.frame(id = sprintf("s%03d", i), visit = 1:5,
                          y = round(b + 1.2 * e + rnorm(5, 0, 1) + 0.2 * (1:5), 6))
}
d <- do.call(rbind, rows)
dir.create("data", showWarnings = FALSE)
write.csv(d, "data/diggle.csv", row.names = FALSE)
d <- read.csv("data/diggle.csv")
fit <- lme(y ~ visit, d, random = ~ 1 | id,
           correlation = corExp(form = ~ visit | id, nugget = TRUE), method = "REML",
           control = lmeControl(opt = "optim", msMaxIter = 500))
cs <- coef(fit$modelStruct$corStruct, unconstrained = FALSE)
sigma2 <- fit$sigma^2
nugget <- cs[["nugget"]]
out <- list(
  generated_by = "tests/reference/diggle_model.R",
  versions = list(R = R.version.string, nlme = as.character(packageVersion("nlme"))),
  formula = "y ~ visit + (1 | id) + ar1(0 + factor(visit) | id)",
  reml_loglik = as.numeric(logLik(fit)),
  fixef = as.list(fixef(fit)),
  intercept_variance = as.numeric(getVarCov(fit)[1, 1]),
  ar1_variance = sigma2 * (1 - nugget),
  ar1_rho = exp(-1 / cs[["range"]]),
  residual_variance = sigma2 * nugget)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE), "diggle_model.json")
