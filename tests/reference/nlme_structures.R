# Reference fits from R's nlme for structured residual covariances (correlation= and variance=
# in mm.lmer / mm.gls), for the tests. R is a development tool only: the tests read
# nlme_structures.json and the CSVs under data/, and never run R.
#
# Usage (from this folder):  Rscript nlme_structures.R nlme_structures.json
# Writes data/{orthodont,ovary,bodyweight,trial,spatial}.csv, then reads them back and fits every
# model to the data AS READ FROM THE CSV (so R fits exactly what the tests load). Each CSV is
# sorted by group, then time, so a group's rows are contiguous and in time order.
#
# Findings recorded in the JSON ("notes") and in nlme_structures.md:
#
# * REML constant. nlme's REML logLik (lme and gls) is the standard, NON-invariant REML
#   log-likelihood, the same quantity as lme4's:  logLik_nlme(REML) = -REMLcrit_lme4 / 2, with
#     -2 logLik = (n - p) log(2 pi) + log|V| + log|X' V^-1 X| + r' V^-1 r,   r = y - X beta_hat.
#   There is NO log|X'X| term in either (checked below on Orthodont, distance ~ age + Sex +
#   (1 | Subject): nlme and lme4 agree to ~1e-12, while 0.5 log|X'X| = 7.1; and rescaling a
#   column of X changes both by the same log(scale)). The likelihood of error contrasts K'y
#   (K'K = I, K'X = 0), which is invariant to the parametrisation of X, is this value
#   + 0.5 log|X'X|; "logdet_xtx" is recorded for every fit in case a test wants that version.
#   Every fit also carries "check.loglik_recomputed": the formula above (or the ML one) evaluated
#   with a dense V rebuilt from nlme's estimates with our own formulas for the structures.
#
# * Gaps in AR(1). corAR1(form = ~ visit | patient) HONOURS gaps: when the integer covariate
#   is not consecutive within a group, nlme's Initialize.corAR1 silently turns the structure into
#   corARMA(p = 1, q = 0) (class(fit$modelStruct$corStruct) becomes "corARMA"), whose
#   correlations are phi^|t_i - t_j| (same fit as corARMA(p = 1, form = ~ visit | patient) and
#   corCAR1(form = ~ visit | patient), phi > 0). Only corAR1(form = ~ 1 | patient) (or a
#   covariate without gaps) works on the order of the observations. The "gap_check" section
#   records the four variants and getVarCov of a patient with a gap.

suppressMessages({library(nlme); library(jsonlite)})
args <- commandArgs(trailingOnly = TRUE)
out_file <- if (length(args)) args[1] else "nlme_structures.json"
dir.create("data", showWarnings = FALSE)
have_lme4 <- requireNamespace("lme4", quietly = TRUE)

# ---------------------------------------------------------------- data
write_data <- function(d, file) {
  rownames(d) <- NULL
  write.csv(d, file.path("data", file), row.names = FALSE)
}

# Orthodont: Subject and Sex as plain strings (R's factor() on them gives sorted levels:
# Female < Male, F01 < ... < M16); visit = 1..4 from age 8, 10, 12, 14.
o <- as.data.frame(Orthodont)
o <- data.frame(distance = o$distance, age = o$age, Subject = as.character(o$Subject),
                Sex = as.character(o$Sex), visit = as.integer((o$age - 8) / 2 + 1))
o <- o[order(o$Subject, o$age), ]
write_data(o, "orthodont.csv")

# Ovary: visit = position within Mare (1..n); sin2pt, cos2pt = sin(2*pi*Time), cos(2*pi*Time)
# (precomputed so that the formula needs no pi).
ov <- as.data.frame(Ovary)
ov <- data.frame(Mare = as.integer(as.character(ov$Mare)), Time = ov$Time,
                 follicles = ov$follicles)
ov <- ov[order(ov$Mare, ov$Time), ]
ov$visit <- as.integer(ave(ov$Time, ov$Mare, FUN = seq_along))
ov$sin2pt <- sin(2 * pi * ov$Time)
ov$cos2pt <- cos(2 * pi * ov$Time)
write_data(ov, "ovary.csv")

# BodyWeight: Diet written as "D1", "D2", "D3" so that it is read as a category everywhere
# (coefficients DietD2, DietD3 instead of nlme's Diet2, Diet3). Rat is the integer id.
bw <- as.data.frame(BodyWeight)
bw <- data.frame(weight = bw$weight, Time = bw$Time, Rat = as.integer(as.character(bw$Rat)),
                 Diet = paste0("D", as.character(bw$Diet)))
bw <- bw[order(bw$Rat, bw$Time), ]
write_data(bw, "bodyweight.csv")

# Simulated trial: 60 patients, 6 visits, 2 arms, random intercept (sd 2) + AR(1) (phi 0.6,
# sigma 1.5) on the visit number, then 15% of the visits dropped at random (MCAR).
set.seed(20240611)
np_ <- 60; nv <- 6
arm_of <- sample(rep(c("control", "treated"), np_ / 2))
tr <- expand.grid(visit = 1:nv, p = 1:np_)
tr$patient <- sprintf("P%02d", tr$p)
tr$arm <- arm_of[tr$p]
b <- rnorm(np_, 0, 2)
e <- as.vector(sapply(1:np_, function(i) {
  as.vector(arima.sim(list(ar = 0.6), n = nv, sd = 1.5 * sqrt(1 - 0.36)))
}))
tr$y <- round(20 + 0.8 * tr$visit - 0.5 * (tr$arm == "treated") * tr$visit + b[tr$p] + e, 4)
keep <- runif(nrow(tr)) > 0.15
tr <- tr[keep, c("y", "visit", "patient", "arm")]
tr <- tr[order(tr$patient, tr$visit), ]
write_data(tr, "trial.csv")

# Simulated spatial data: 25 sites x 8 points, coordinates x, y uniform on [0, 10], response z
# (named z because y is a coordinate) = 1 + 0.5 x1 + e, e ~ N(0, 1.2^2 exp(-d / 2.5)) per site.
set.seed(7)
ns <- 25; npt <- 8
sp <- data.frame(site = sprintf("S%02d", rep(1:ns, each = npt)),
                 x = round(runif(ns * npt, 0, 10), 3), y = round(runif(ns * npt, 0, 10), 3),
                 x1 = round(rnorm(ns * npt), 3))
sp$z <- NA
for (s in unique(sp$site)) {
  i <- which(sp$site == s)
  D <- as.matrix(dist(sp[i, c("x", "y")]))
  S <- 1.2^2 * exp(-D / 2.5)
  sp$z[i] <- 1 + 0.5 * sp$x1[i] + as.vector(t(chol(S)) %*% rnorm(npt))
}
sp$z <- round(sp$z, 4)
sp <- sp[, c("z", "x1", "x", "y", "site")]
write_data(sp, "spatial.csv")

# Read back: the fits use exactly the CSV contents.
DATA <- list()
for (f in c("orthodont", "ovary", "bodyweight", "trial", "spatial"))
  DATA[[f]] <- read.csv(file.path("data", paste0(f, ".csv")), stringsAsFactors = FALSE)

# ---------------------------------------------------------------- model list
# Each model: nlme call (as an expression in `dat`), our spec, the grouping column, the groups
# whose R block is recorded, and a description of the structure for the independent check.
M <- list(
  list(name = "orthodont_lme_ident_sex", data = "orthodont",
       call = quote(lme(distance ~ age + Sex, data = dat, random = ~ 1 | Subject,
                        weights = varIdent(form = ~ 1 | Sex), method = METHOD)),
       ours = list(`function` = "lmer", formula = "distance ~ age + Sex + (1 | Subject)",
                   correlation = NULL, variance = "ident(Sex)"),
       fixed = distance ~ age + Sex, random = ~ 1, group = "Subject", blocks = c("F01", "M01"),
       cor = list(type = "none"), var = list(type = "ident", col = "Sex")),
  list(name = "ovary_lme_ar1", data = "ovary",
       call = quote(lme(follicles ~ sin2pt + cos2pt, data = dat, random = ~ 1 | Mare,
                        correlation = corAR1(form = ~ 1 | Mare), method = METHOD)),
       ours = list(`function` = "lmer", formula = "follicles ~ sin2pt + cos2pt + (1 | Mare)",
                   correlation = "ar1(visit | Mare)", variance = NULL),
       comment = paste("sin2pt, cos2pt = sin(2*pi*Time), cos(2*pi*Time). nlme's corAR1(form = ~ 1 | Mare)",
                       "uses the order within Mare; visit is that order (1..n), so ar1(visit | Mare) is",
                       "the same model (corAR1(form = ~ visit | Mare) gives the same fit, see check)."),
       fixed = follicles ~ sin2pt + cos2pt, random = ~ 1, group = "Mare", blocks = 1,
       cor = list(type = "ar1", col = "visit"), var = list(type = "none"),
       alt = quote(lme(follicles ~ sin2pt + cos2pt, data = dat, random = ~ 1 | Mare,
                       correlation = corAR1(form = ~ visit | Mare), method = METHOD))),
  list(name = "bodyweight_lme_car1", data = "bodyweight",
       call = quote(lme(weight ~ Time * Diet, data = dat, random = ~ Time | Rat,
                        correlation = corCAR1(form = ~ Time | Rat), method = METHOD)),
       fallback = quote(lme(weight ~ Time * Diet, data = dat, random = ~ 1 | Rat,
                            correlation = corCAR1(form = ~ Time | Rat), method = METHOD)),
       fallback_ours = "weight ~ Time * Diet + (1 | Rat)",
       ours = list(`function` = "lmer", formula = "weight ~ Time * Diet + (Time | Rat)",
                   correlation = "car1(Time | Rat)", variance = NULL),
       fixed = weight ~ Time * Diet, random = ~ Time, group = "Rat", blocks = 1,
       cor = list(type = "car1", col = "Time"), var = list(type = "none")),
  list(name = "bodyweight_lme_power", data = "bodyweight",
       call = quote(lme(weight ~ Time * Diet, data = dat, random = ~ Time | Rat,
                        weights = varPower(form = ~ Time), method = METHOD)),
       ours = list(`function` = "lmer", formula = "weight ~ Time * Diet + (Time | Rat)",
                   correlation = NULL, variance = "power(Time)"),
       fixed = weight ~ Time * Diet, random = ~ Time, group = "Rat", blocks = 1,
       cor = list(type = "none"), var = list(type = "power", col = "Time")),
  list(name = "orthodont_gls_symm_ident", data = "orthodont",
       call = quote(gls(distance ~ age * Sex, data = dat,
                        correlation = corSymm(form = ~ visit | Subject),
                        weights = varIdent(form = ~ 1 | age), method = METHOD)),
       ours = list(`function` = "gls", formula = "distance ~ age * Sex",
                   correlation = "symm(visit | Subject)", variance = "ident(age)"),
       comment = "SAS REPEATED / TYPE=UN: unstructured 4 x 4 covariance per subject.",
       fixed = distance ~ age * Sex, random = NULL, group = "Subject", blocks = "M01",
       cor = list(type = "symm", col = "visit"), var = list(type = "ident", col = "age")),
  list(name = "orthodont_gls_cs", data = "orthodont",
       call = quote(gls(distance ~ age + Sex, data = dat,
                        correlation = corCompSymm(form = ~ 1 | Subject), method = METHOD)),
       ours = list(`function` = "gls", formula = "distance ~ age + Sex",
                   correlation = "cs(1 | Subject)", variance = NULL),
       comment = "Equivalent to orthodont_lme_ri (rho >= 0): same logLik, fixed effects and marginal V.",
       fixed = distance ~ age + Sex, random = NULL, group = "Subject", blocks = "M01",
       cor = list(type = "cs"), var = list(type = "none")),
  list(name = "orthodont_lme_ri", data = "orthodont",
       call = quote(lme(distance ~ age + Sex, data = dat, random = ~ 1 | Subject,
                        method = METHOD)),
       ours = list(`function` = "lmer", formula = "distance ~ age + Sex + (1 | Subject)",
                   correlation = NULL, variance = NULL),
       comment = "Random intercept, no structures: equivalent to orthodont_gls_cs; also the lme4 comparison.",
       fixed = distance ~ age + Sex, random = ~ 1, group = "Subject", blocks = "M01",
       cor = list(type = "none"), var = list(type = "none"),
       lme4 = "distance ~ age + Sex + (1 | Subject)"),
  list(name = "trial_lme_ar1", data = "trial",
       call = quote(lme(y ~ arm * visit, data = dat, random = ~ 1 | patient,
                        correlation = corAR1(form = ~ visit | patient), method = METHOD)),
       ours = list(`function` = "lmer", formula = "y ~ arm * visit + (1 | patient)",
                   correlation = "ar1(visit | patient)", variance = NULL),
       comment = paste("Visits have gaps: nlme turns corAR1(form = ~ visit | patient) into",
                       "corARMA(p = 1), correlation phi^|visit_i - visit_j| (see gap_check)."),
       fixed = y ~ arm * visit, random = ~ 1, group = "patient", blocks = "GAP",
       cor = list(type = "ar1", col = "visit"), var = list(type = "none")),
  list(name = "trial_gls_ar1", data = "trial",
       call = quote(gls(y ~ arm * visit, data = dat,
                        correlation = corAR1(form = ~ visit | patient), method = METHOD)),
       ours = list(`function` = "gls", formula = "y ~ arm * visit",
                   correlation = "ar1(visit | patient)", variance = NULL),
       fixed = y ~ arm * visit, random = NULL, group = "patient", blocks = "GAP",
       cor = list(type = "ar1", col = "visit"), var = list(type = "none")),
  list(name = "spatial_gls_exp", data = "spatial",
       call = quote(gls(z ~ x1, data = dat, correlation = corExp(form = ~ x + y | site),
                        method = METHOD)),
       ours = list(`function` = "gls", formula = "z ~ x1",
                   correlation = "exp(x + y | site)", variance = NULL),
       comment = "corExp without nugget: correlation exp(-d / range), d Euclidean on (x, y).",
       fixed = z ~ x1, random = NULL, group = "site", blocks = "S01",
       cor = list(type = "exp", cols = c("x", "y")), var = list(type = "none")),
  list(name = "spatial_gls_gaus", data = "spatial",
       call = quote(gls(z ~ x1, data = dat, correlation = corGaus(form = ~ x + y | site),
                        method = METHOD)),
       ours = list(`function` = "gls", formula = "z ~ x1",
                   correlation = "gaus(x + y | site)", variance = NULL),
       comment = "corGaus without nugget: correlation exp(-(d / range)^2).",
       fixed = z ~ x1, random = NULL, group = "site", blocks = "S01",
       cor = list(type = "gaus", cols = c("x", "y")), var = list(type = "none")),
  list(name = "spatial_gls_spher", data = "spatial",
       call = quote(gls(z ~ x1, data = dat, correlation = corSpher(form = ~ x + y | site),
                        method = METHOD)),
       ours = list(`function` = "gls", formula = "z ~ x1",
                   correlation = "spher(x + y | site)", variance = NULL),
       comment = paste("corSpher without nugget: 1 - 1.5 s + 0.5 s^3, s = d / range < 1. From its",
                       "own start nlme stops at a local optimum (range 0.29, in own_start); the",
                       "values are nlme's started at range 4 (corSpher(value = 4))."),
       restart = quote(gls(z ~ x1, data = dat,
                           correlation = corSpher(value = 4, form = ~ x + y | site),
                           method = METHOD)),
       fixed = z ~ x1, random = NULL, group = "site", blocks = "S01",
       cor = list(type = "spher", cols = c("x", "y")), var = list(type = "none")),
  list(name = "spatial_gls_lin", data = "spatial",
       call = quote(gls(z ~ x1, data = dat, correlation = corLin(form = ~ x + y | site),
                        method = METHOD)),
       ours = list(`function` = "gls", formula = "z ~ x1",
                   correlation = "lin(x + y | site)", variance = NULL),
       comment = paste("corLin without nugget: 1 - d / range for d < range. The criterion has a",
                       "kink at every distance and local optima between them (nlme's own start:",
                       "own_start); the values are nlme's started at range 3.17 (corLin(value = 3.17))."),
       restart = quote(gls(z ~ x1, data = dat,
                           correlation = corLin(value = 3.17, form = ~ x + y | site),
                           method = METHOD)),
       fixed = z ~ x1, random = NULL, group = "site", blocks = "S01",
       cor = list(type = "lin", cols = c("x", "y")), var = list(type = "none")),
  list(name = "spatial_gls_ratio", data = "spatial",
       call = quote(gls(z ~ x1, data = dat, correlation = corRatio(form = ~ x + y | site),
                        method = METHOD)),
       ours = list(`function` = "gls", formula = "z ~ x1",
                   correlation = "ratio(x + y | site)", variance = NULL),
       comment = "corRatio without nugget: correlation 1 / (1 + (d / range)^2).",
       fixed = z ~ x1, random = NULL, group = "site", blocks = "S01",
       cor = list(type = "ratio", cols = c("x", "y")), var = list(type = "none")),
  list(name = "spatial_lme_spher", data = "spatial",
       call = quote(lme(z ~ x1, data = dat, random = ~ 1 | site,
                        correlation = corSpher(form = ~ x + y | site), method = METHOD)),
       ours = list(`function` = "lmer", formula = "z ~ x1 + (1 | site)",
                   correlation = "spher(x + y | site)", variance = NULL),
       comment = "A random intercept per site and a spherical correlation within it.",
       fixed = z ~ x1, random = ~ 1, group = "site", blocks = "S01",
       cor = list(type = "spher", cols = c("x", "y")), var = list(type = "none")),
  list(name = "orthodont_lme_varexp", data = "orthodont",
       call = quote(lme(distance ~ age + Sex, data = dat, random = ~ 1 | Subject,
                        weights = varExp(form = ~ age), method = METHOD)),
       ours = list(`function` = "lmer", formula = "distance ~ age + Sex + (1 | Subject)",
                   correlation = NULL, variance = "exp(age)"),
       fixed = distance ~ age + Sex, random = ~ 1, group = "Subject", blocks = "M01",
       cor = list(type = "none"), var = list(type = "exp", col = "age")),
  list(name = "orthodont_gls_csh", data = "orthodont",
       call = quote(gls(distance ~ age * Sex, data = dat,
                        correlation = corCompSymm(form = ~ 1 | Subject),
                        weights = varIdent(form = ~ 1 | age), method = METHOD)),
       ours = list(`function` = "gls", formula = "distance ~ age * Sex",
                   correlation = "cs(1 | Subject)", variance = "ident(age)"),
       comment = "SAS TYPE=CSH (heterogeneous compound symmetry).",
       fixed = distance ~ age * Sex, random = NULL, group = "Subject", blocks = "M01",
       cor = list(type = "cs"), var = list(type = "ident", col = "age")),
  list(name = "orthodont_gls_arh1", data = "orthodont",
       call = quote(gls(distance ~ age * Sex, data = dat,
                        correlation = corAR1(form = ~ visit | Subject),
                        weights = varIdent(form = ~ 1 | age), method = METHOD)),
       ours = list(`function` = "gls", formula = "distance ~ age * Sex",
                   correlation = "ar1(visit | Subject)", variance = "ident(age)"),
       comment = "SAS TYPE=ARH(1) (heterogeneous AR(1)).",
       fixed = distance ~ age * Sex, random = NULL, group = "Subject", blocks = "M01",
       cor = list(type = "ar1", col = "visit"), var = list(type = "ident", col = "age")),
  list(name = "trial_gls_arma11", data = "trial",
       call = quote(gls(y ~ arm * visit, data = dat,
                        correlation = corARMA(form = ~ visit | patient, p = 1, q = 1),
                        method = METHOD)),
       ours = list(`function` = "gls", formula = "y ~ arm * visit",
                   correlation = "arma(visit | patient, p = 1, q = 1)", variance = NULL),
       comment = "ARMA(1,1) on visits with gaps (SAS TYPE=ARMA(1,1)); correlation ARMAacf(|lag|).",
       fixed = y ~ arm * visit, random = NULL, group = "patient", blocks = "GAP",
       cor = list(type = "arma", col = "visit", p = 1, q = 1), var = list(type = "none")),
  list(name = "ovary_lme_arma11", data = "ovary",
       call = quote(lme(follicles ~ sin2pt + cos2pt, data = dat, random = ~ 1 | Mare,
                        correlation = corARMA(form = ~ visit | Mare, p = 1, q = 1),
                        method = METHOD)),
       ours = list(`function` = "lmer", formula = "follicles ~ sin2pt + cos2pt + (1 | Mare)",
                   correlation = "arma(visit | Mare, p = 1, q = 1)", variance = NULL),
       comment = "Pinheiro and Bates (2000), section 6.3.2: Ovary with ARMA(1,1) residuals.",
       fixed = follicles ~ sin2pt + cos2pt, random = ~ 1, group = "Mare", blocks = 1,
       cor = list(type = "arma", col = "visit", p = 1, q = 1), var = list(type = "none")),
  list(name = "ovary_gls_arma20", data = "ovary",
       call = quote(gls(follicles ~ sin2pt + cos2pt, data = dat,
                        correlation = corARMA(form = ~ visit | Mare, p = 2), method = METHOD)),
       ours = list(`function` = "gls", formula = "follicles ~ sin2pt + cos2pt",
                   correlation = "arma(visit | Mare, p = 2)", variance = NULL),
       fixed = follicles ~ sin2pt + cos2pt, random = NULL, group = "Mare", blocks = 1,
       cor = list(type = "arma", col = "visit", p = 2, q = 0), var = list(type = "none")),
  list(name = "orthodont_gls_ma2", data = "orthodont",
       call = quote(gls(distance ~ age * Sex, data = dat,
                        correlation = corARMA(form = ~ visit | Subject, q = 2),
                        method = METHOD)),
       ours = list(`function` = "gls", formula = "distance ~ age * Sex",
                   correlation = "arma(visit | Subject, q = 2)", variance = NULL),
       fixed = distance ~ age * Sex, random = NULL, group = "Subject", blocks = "M01",
       cor = list(type = "arma", col = "visit", p = 0, q = 2), var = list(type = "none"))
)

# ---------------------------------------------------------------- helpers
call_text <- function(cl, method) {
  cl <- do.call(substitute, list(cl, list(METHOD = method)))
  paste(trimws(deparse(cl, width.cutoff = 500)), collapse = " ")
}
fit_call <- function(cl, dat, method) {
  cl <- do.call(substitute, list(cl, list(METHOD = method)))
  eval(cl, list(dat = dat), globalenv())
}
# Fit once collecting warnings; an error is returned as a string.
try_fit <- function(cl, dat, method) {
  warns <- character(0)
  fit <- tryCatch(withCallingHandlers(fit_call(cl, dat, method),
                                      warning = function(w) {
                                        warns <<- c(warns, conditionMessage(w))
                                        invokeRestart("muffleWarning")
                                      }),
                  error = function(e) conditionMessage(e))
  list(fit = fit, warnings = unique(warns))
}
time_fits <- function(cl, dat, method, k = 5) {
  t <- sapply(seq_len(k), function(i)
    system.time(suppressWarnings(fit_call(cl, dat, method)))[["elapsed"]])
  list(median = median(t), all = t)
}

# Correlation matrix and sd multipliers of one group's rows, from nlme's estimates, with our
# own formulas (independent of getVarCov).
cor_block <- function(cor, cs, di) {
  n <- nrow(di)
  switch(cor$type,
         none = diag(n),
         ar1 = cs[[1]]^abs(outer(di[[cor$col]], di[[cor$col]], "-")),
         car1 = cs[[1]]^abs(outer(di[[cor$col]], di[[cor$col]], "-")),
         cs = { C <- matrix(cs[[1]], n, n); diag(C) <- 1; C },
         exp = exp(-as.matrix(dist(di[, cor$cols])) / cs[[1]]),
         gaus = exp(-(as.matrix(dist(di[, cor$cols])) / cs[[1]])^2),
         spher = { u <- pmin(as.matrix(dist(di[, cor$cols])) / cs[[1]], 1); 1 - 1.5 * u + 0.5 * u^3 },
         lin = 1 - pmin(as.matrix(dist(di[, cor$cols])) / cs[[1]], 1),
         ratio = 1 / (1 + (as.matrix(dist(di[, cor$cols])) / cs[[1]])^2),
         arma = {
           lag <- abs(outer(di[[cor$col]], di[[cor$col]], "-"))
           acf <- ARMAacf(ar = unname(cs[seq_len(cor$p)]),
                          ma = unname(cs[cor$p + seq_len(cor$q)]), lag.max = max(lag))
           matrix(acf[lag + 1], nrow(lag))
         },
         symm = {
           m <- max(DATA_CUR[[cor$col]])
           Cf <- diag(m)
           Cf[lower.tri(Cf)] <- 0
           k <- 1
           for (i in 1:(m - 1)) for (j in (i + 1):m) { Cf[i, j] <- Cf[j, i] <- cs[[k]]; k <- k + 1 }
           v <- di[[cor$col]]
           Cf[v, v, drop = FALSE]
         })
}
sd_mult <- function(var, vs, di, ratios) {
  x <- if (!is.null(var$col)) di[[var$col]]
  switch(var$type,
         none = rep(1, nrow(di)),
         ident = unname(ratios[as.character(x)]),
         power = abs(x)^vs[[1]],
         exp = exp(vs[[1]] * x))
}

mat <- function(A) { A <- unclass(A); attributes(A) <- list(dim = dim(A)); A }

# ---------------------------------------------------------------- fitting
out_models <- list()
for (m in M) {
  dat <- DATA[[m$data]]
  DATA_CUR <- dat
  for (method in c("REML", "ML")) {
    cl <- m$call; ours <- m$ours; fixed <- m$fixed; random <- m$random
    notes <- character(0)
    tf <- try_fit(cl, dat, method)
    if (is.character(tf$fit) && !is.null(m$fallback)) {
      notes <- c(notes, paste0("the first model failed in nlme (", tf$fit, "); fitted the fallback ",
                               "with a random intercept only"))
      failed_call <- call_text(cl, method)
      cl <- m$fallback; ours$formula <- m$fallback_ours; random <- ~ 1
      tf <- try_fit(cl, dat, method)
    }
    own_start <- NULL
    if (!is.null(m$restart) && !is.character(tf$fit)) {  # nlme from a better start
      again <- try_fit(m$restart, dat, method)
      if (!is.character(again$fit) && logLik(again$fit) > logLik(tf$fit)) {
        own_start <- list(call = call_text(cl, method),
                          minus2loglik = -2 * as.numeric(logLik(tf$fit)),
                          cor_params = as.list(coef(tf$fit$modelStruct$corStruct,
                                                    unconstrained = FALSE)))
        cl <- m$restart; tf <- again
      }
    }
    entry <- list(name = paste0(m$name, "_", tolower(method)), model = m$name,
                  data = file.path("data", paste0(m$data, ".csv")),
                  nlme_call = call_text(cl, method),
                  ours = c(ours, list(reml = method == "REML")))
    if (!is.null(m$comment)) entry$comment <- m$comment
    # nlme's fit from its own start where a restart (m$restart) reached a higher likelihood:
    # the values recorded are then the restart's
    if (!is.null(own_start)) entry$own_start <- own_start
    if (is.character(tf$fit)) {
      entry$converged <- FALSE; entry$error <- tf$fit; entry$warnings <- tf$warnings
      out_models[[length(out_models) + 1]] <- entry
      cat(entry$name, "FAILED:", tf$fit, "\n")
      next
    }
    fit <- tf$fit
    is_lme <- inherits(fit, "lme")
    X <- model.matrix(fixed, dat)
    ll <- logLik(fit)
    tt <- summary(fit)$tTable
    entry$converged <- TRUE
    entry$warnings <- tf$warnings
    if (is.character(fit$apVar)) entry$apVar <- fit$apVar
    entry$n <- nrow(dat)
    entry$p <- ncol(X)
    entry$n_groups <- length(unique(dat[[m$group]]))
    entry$logLik <- as.numeric(ll)
    entry$minus2loglik <- -2 * as.numeric(ll)
    entry$df <- attr(ll, "df")
    entry$AIC <- AIC(fit); entry$BIC <- BIC(fit)
    entry$logdet_xtx <- as.numeric(determinant(crossprod(X), logarithm = TRUE)$modulus)
    entry$fixef <- as.list(fixef_ <- if (is_lme) fixef(fit) else coef(fit))
    entry$fixef_se <- as.list(setNames(tt[, "Std.Error"], rownames(tt)))
    entry$sigma <- fit$sigma
    G <- NULL
    if (is_lme) {
      G <- mat(getVarCov(fit))
      nm <- colnames(model.matrix(random, dat))
      entry$random_effects <- list(group = m$group, terms = I(nm),
                                   sd = as.list(setNames(sqrt(diag(G)), nm)),
                                   cor = if (ncol(G) > 1) cov2cor(G) else NULL,
                                   cov = G)
    } else entry["random_effects"] <- list(NULL)
    cst <- fit$modelStruct$corStruct; vst <- fit$modelStruct$varStruct
    cs <- if (!is.null(cst)) coef(cst, unconstrained = FALSE) else NULL
    vs <- if (!is.null(vst)) coef(vst, unconstrained = FALSE) else NULL
    if (!is.null(cst)) {
      nmc <- names(cs)
      if (m$cor$type == "symm") {
        mm <- max(dat[[m$cor$col]]); nmc <- character(0)
        for (i in 1:(mm - 1)) for (j in (i + 1):mm) nmc <- c(nmc, sprintf("cor(%d,%d)", i, j))
      }
      entry$cor_params <- as.list(setNames(unname(cs), nmc))
      entry$cor_class <- class(cst)[1]
    } else entry["cor_params"] <- list(NULL)
    ratios <- NULL
    if (!is.null(vst)) {
      entry$var_params <- as.list(vs)
      entry$var_class <- class(vst)[1]
      if (m$var$type == "ident") {
        gn <- attr(vst, "groupNames")
        ratios <- setNames(c(1, unname(vs))[match(gn, c(gn[1], names(vs)))], gn)
        entry$var_sd_ratio_by_stratum <- as.list(ratios)
        entry$var_reference_stratum <- gn[1]
      }
    } else entry["var_params"] <- list(NULL)

    # R blocks (and V blocks for lme) of the chosen groups, with their 1-based CSV rows.
    gcol <- dat[[m$group]]
    blocks <- m$blocks
    if (identical(blocks, "GAP")) {   # first patient with an interior gap in visit
      blocks <- Find(function(g) { v <- dat$visit[gcol == g]; any(diff(v) > 1) }, unique(gcol))
    }
    entry$r_blocks <- lapply(blocks, function(g) {
      rows <- which(gcol == g)
      Rn <- if (is_lme) mat(getVarCov(fit, type = "conditional", individual = as.character(g))[[1]])
            else mat(getVarCov(fit, individual = as.character(g)))
      di <- dat[rows, , drop = FALSE]
      s <- sd_mult(m$var, vs, di, ratios)
      Ra <- fit$sigma^2 * (s %o% s) * cor_block(m$cor, cs, di)
      b <- list(group = g, rows = rows, R = Rn,
                max_abs_diff_own_formula = max(abs(Rn - Ra)),
                normalized = unname(resid(fit, type = "normalized")[rows]))
      if (is_lme) {
        b$V <- mat(getVarCov(fit, type = "marginal", individual = as.character(g))[[1]])
        Z <- model.matrix(random, di)
        b$max_abs_diff_V_own_formula <- max(abs(b$V - (Z %*% G %*% t(Z) + Ra)))
      }
      b
    })

    # Recompute the log-likelihood with a dense V from the estimates and our own formulas.
    r <- dat[[all.vars(fixed)[1]]] - as.vector(X %*% fixef_)
    ldV <- 0; quad <- 0; XVX <- matrix(0, ncol(X), ncol(X))
    for (g in unique(gcol)) {
      i <- which(gcol == g); di <- dat[i, , drop = FALSE]
      s <- sd_mult(m$var, vs, di, ratios)
      Vi <- fit$sigma^2 * (s %o% s) * cor_block(m$cor, cs, di)
      if (is_lme) { Z <- model.matrix(random, di); Vi <- Vi + Z %*% G %*% t(Z) }
      U <- chol(Vi)
      ldV <- ldV + 2 * sum(log(diag(U)))
      ri <- backsolve(U, r[i], transpose = TRUE)
      Xi <- backsolve(U, X[i, , drop = FALSE], transpose = TRUE)
      quad <- quad + sum(ri^2); XVX <- XVX + crossprod(Xi)
    }
    n <- nrow(dat); p <- ncol(X)
    ll_own <- if (method == "ML") -0.5 * (n * log(2 * pi) + ldV + quad)
              else -0.5 * ((n - p) * log(2 * pi) + ldV + quad +
                           as.numeric(determinant(XVX)$modulus))
    entry$check <- list(loglik_recomputed = ll_own, loglik_diff = as.numeric(ll) - ll_own,
                        formula = if (method == "ML") "-0.5*(n log 2pi + log|V| + r'V^-1 r)"
                                  else "-0.5*((n-p) log 2pi + log|V| + log|X'V^-1 X| + r'V^-1 r)")
    if (!is.null(m$alt)) {
      alt <- fit_call(m$alt, dat, method)
      entry$check$alternative_call <- call_text(m$alt, method)
      entry$check$alternative_logLik <- as.numeric(logLik(alt))
    }
    if (!is.null(m$lme4) && have_lme4) {
      lf <- suppressMessages(lme4::lmer(as.formula(m$lme4), dat, REML = method == "REML"))
      entry$check$lme4_formula <- m$lme4
      entry$check$lme4_logLik <- as.numeric(logLik(lf))
      if (method == "REML") entry$check$lme4_REMLcrit <- lme4::REMLcrit(lf)
      else entry$check$lme4_deviance <- deviance(lf)
    }
    if (length(notes)) entry$notes <- notes
    tm <- time_fits(cl, dat, method)
    entry$time_s <- tm$median
    entry$time_s_all <- tm$all
    out_models[[length(out_models) + 1]] <- entry
    cat(sprintf("%-36s logLik %12.5f  own-diff %.2e  R-diff %.2e  %.3fs %s\n", entry$name,
                entry$logLik, entry$check$loglik_diff,
                max(sapply(entry$r_blocks, `[[`, "max_abs_diff_own_formula")), tm$median,
                paste(tf$warnings, collapse = "; ")))
  }
}

# ---------------------------------------------------------------- gap check
tdat <- DATA$trial
gp <- Find(function(g) any(diff(tdat$visit[tdat$patient == g]) > 1), unique(tdat$patient))
gap_variants <- list(
  corAR1_visit = quote(gls(y ~ arm * visit, data = dat, correlation = corAR1(form = ~ visit | patient))),
  corARMA_p1_visit = quote(gls(y ~ arm * visit, data = dat,
                               correlation = corARMA(p = 1, q = 0, form = ~ visit | patient))),
  corCAR1_visit = quote(gls(y ~ arm * visit, data = dat, correlation = corCAR1(form = ~ visit | patient))),
  corAR1_order = quote(gls(y ~ arm * visit, data = dat, correlation = corAR1(form = ~ 1 | patient))))
gap <- lapply(gap_variants, function(cl) {
  f <- eval(cl, list(dat = tdat), globalenv())
  C <- cov2cor(mat(getVarCov(f, individual = gp)))
  list(call = paste(deparse(cl, width.cutoff = 500), collapse = " "),
       logLik_reml = as.numeric(logLik(f)),
       class = class(f$modelStruct$corStruct)[1],
       phi = unname(coef(f$modelStruct$corStruct, unconstrained = FALSE)),
       corr_block = C)
})
vis <- tdat$visit[tdat$patient == gp]
phi <- gap$corAR1_visit$phi
gap_check <- list(
  patient = gp, visits = vis, rows = which(tdat$patient == gp),
  finding = paste("corAR1(form = ~ visit | patient) honours gaps: with non-consecutive visits nlme",
                  "converts it to corARMA(p = 1, q = 0) (class below) and the correlation is",
                  "phi^|visit_i - visit_j|; it equals corARMA(p = 1, form = ~ visit | patient) and",
                  "corCAR1(form = ~ visit | patient). corAR1(form = ~ 1 | patient) uses the order only",
                  "(phi^|position_i - position_j|): a different model with a different logLik."),
  max_abs_diff_corAR1_visit_vs_phi_pow_gap = max(abs(gap$corAR1_visit$corr_block -
                                                     phi^abs(outer(vis, vis, "-")))),
  variants = gap)

# ---------------------------------------------------------------- REML constant
o_ri <- Find(function(e) e$name == "orthodont_lme_ri_reml", out_models)
reml_relation <- list(
  relation = paste("nlme's REML logLik = -REMLcrit(lme4) / 2 exactly: both are",
                   "-0.5*((n-p) log(2 pi) + log|V| + log|X'V^-1 X| + r'V^-1 r) with no log|X'X| term.",
                   "minus2loglik (REML) = lme4's REML criterion. The error-contrast likelihood",
                   "(invariant to the parametrisation of X) would be logLik + 0.5*logdet_xtx.",
                   "gls uses the same formula (check.loglik_recomputed in every entry)."),
  orthodont_lme_ri = list(nlme_logLik = o_ri$logLik, lme4_REMLcrit = o_ri$check$lme4_REMLcrit,
                          nlme_plus_REMLcrit_over_2 = if (!is.null(o_ri$check$lme4_REMLcrit))
                            o_ri$logLik + o_ri$check$lme4_REMLcrit / 2 else NULL,
                          half_logdet_xtx = o_ri$logdet_xtx / 2))
if (have_lme4) {   # rescaling a column of X: both change by the same log(10)
  od <- DATA$orthodont; od$age10 <- od$age * 10
  reml_relation$rescaled_age10 <- list(
    nlme_logLik = as.numeric(logLik(lme(distance ~ age10 + Sex, data = od, random = ~ 1 | Subject))),
    lme4_minus_REMLcrit_over_2 = -lme4::REMLcrit(lme4::lmer(distance ~ age10 + Sex + (1 | Subject), od)) / 2,
    comment = "age * 10: both REML logLiks drop by log(10) = 2.302585 relative to orthodont_lme_ri_reml")
}

out <- list(
  generated_by = "tests/reference/nlme_structures.R",
  versions = list(R = R.version.string, nlme = as.character(packageVersion("nlme")),
                  lme4 = if (have_lme4) as.character(packageVersion("lme4")) else NULL,
                  jsonlite = as.character(packageVersion("jsonlite"))),
  notes = list(
    reml_constant = reml_relation$relation,
    gaps = gap_check$finding,
    rows = paste("r_blocks[].rows are 1-based row numbers in the CSV (data rows, header excluded);",
                 "R is getVarCov(type = 'conditional') for lme and getVarCov() for gls, in those rows' order;",
                 "V (lme) is the marginal block Z G Z' + R. max_abs_diff_own_formula compares R with",
                 "sigma^2 * D C D built from the recorded parameters."),
    parameters = paste("cor_params: coef(corStruct, unconstrained = FALSE): Phi (ar1/car1), Rho (cs),",
                       "range (exp), cor(i,j) over visit values i < j (symm). var_params:",
                       "coef(varStruct, unconstrained = FALSE): sd ratios vs the reference stratum (ident;",
                       "var_sd_ratio_by_stratum gives all strata), power delta (sd ~ |x|^delta),",
                       "expon t (sd ~ exp(t x)). Diet is written D1..D3, so nlme's Diet2 is DietD2 here."),
    time = "time_s: median elapsed seconds of 5 nlme fits (system.time), 2-core machine."),
  reml_constant = reml_relation,
  gap_check = gap_check,
  models = out_models)
# Pretty-print with arrays of numbers/strings on one line (jsonlite's pretty = TRUE puts every
# number of a matrix on its own line).
compact <- toJSON(out, auto_unbox = TRUE, digits = NA, null = "null", na = "null")
fmt <- function(x, ind = "") {
  ind2 <- paste0(ind, "  ")
  scalar <- function(v) if (is.null(v)) "null" else as.character(toJSON(v, auto_unbox = TRUE, digits = NA))
  if (!is.list(x)) return(scalar(x))
  if (!is.null(names(x))) {
    if (!length(x)) return("{}")
    items <- mapply(function(k, v) paste0(ind2, toJSON(k, auto_unbox = TRUE), ": ", fmt(v, ind2)),
                    names(x), x)
    return(paste0("{\n", paste(items, collapse = ",\n"), "\n", ind, "}"))
  }
  if (!length(x)) return("[]")
  if (all(vapply(x, function(v) !is.list(v), TRUE)))
    return(paste0("[", paste(vapply(x, scalar, ""), collapse = ", "), "]"))
  paste0("[\n", paste(paste0(ind2, vapply(x, fmt, "", ind = ind2)), collapse = ",\n"), "\n", ind, "]")
}
writeLines(fmt(fromJSON(compact, simplifyVector = FALSE)), out_file)
cat("wrote", out_file, "\n")
