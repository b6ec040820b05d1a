# Reference fits of random-effects terms with structured covariances (diag, cs, ar1, toep and
# their hom/het variants), for tests/test_structured_g.py. Usage (from this folder):
#   Rscript glmmtmb_structures.R
# writes cases/structured_visits.csv (simulated, fixed seed) and glmmtmb_structures.json.
#
# Engines. glmmTMB (Debian's r-cran-glmmtmb 1.1.5) fits us, diag, cs (heterogeneous), ar1
# (homogeneous) and toep (heterogeneous). It has no homdiag/homcs/hetar1 (added in later
# versions), so:
# * homdiag, homcs and homtoep are glmmTMB's diag, cs and toep with their sd parameters tied by
#   glmmTMB's `map` argument (one shared log-sd: what the later hom* structures are);
# * hetar1 cannot be written in glmmTMB 1.1.5: it is fitted here by brute force, maximizing the
#   (REML) likelihood computed from the dense V_i = Z_i Sigma Z_i' + sigma^2 I per subject with
#   nlminb from several starts (engine "dense-V nlminb"; pdHess from optimHess's numerical
#   Hessian at the optimum); the same code is run on the homogeneous ar1 model and checked
#   against glmmTMB's fit of it (dense_check).
# lme4 fits the unstructured model too: its REMLcrit must equal glmmTMB's REML -2 logLik.
#
# Recorded per model and method: criterion (-2 logLik; the REML criterion for REML), fixed
# effects, their SEs (glmmTMB's vcov; and se_given_theta: sqrt(diag((X'V^-1X)^-1)) at the
# estimates, lme4's definition, computed here from dense V), per random-effects term the
# sds of its columns and its correlation matrix, sigma, and glmmTMB's convergence (pdHess,
# the optimizer's message and code).
suppressMessages({library(glmmTMB); library(lme4); library(jsonlite)})

# -- data: 50 subjects in 10 sites, 4 visits, 3 observations per subject and visit -----------
set.seed(20240611)
n_id <- 50; k <- 4; reps <- 3
sds <- c(1.0, 1.3, 0.8, 1.1)
S <- diag(sds) %*% (0.6^abs(outer(1:k, 1:k, "-"))) %*% diag(sds)
u <- matrix(rnorm(n_id * k), n_id) %*% chol(S)
site_effect <- rnorm(10, sd = 0.5)
d <- expand.grid(rep = 1:reps, visit = 1:k, id = 1:n_id)
d$site <- (d$id - 1) %/% 5 + 1
d$x <- round(rnorm(nrow(d)), 4)
d$y <- round(1 + 0.5 * d$x + c(0, 0.3, 0.5, 0.6)[d$visit] + u[cbind(d$id, d$visit)] +
             site_effect[d$site] + rnorm(nrow(d), sd = 0.7), 4)
d$id <- sprintf("p%02d", d$id); d$site <- sprintf("s%02d", d$site)
d <- d[, c("id", "site", "visit", "rep", "x", "y")]
write.csv(d, file.path("cases", "structured_visits.csv"), row.names = FALSE)
d <- read.csv(file.path("cases", "structured_visits.csv"))
sleep <- read.csv(file.path("..", "..", "src", "mixedmodels", "datasets", "data", "sleepstudy.csv"))
sleep$Subject <- factor(sleep$Subject)

visits <- "y ~ x + factor(visit) + "
models <- list(
  list(id = "us", data = "visits", f = paste0(visits, "(0 + factor(visit) | id)"),
       tmb = paste0(visits, "us(0 + factor(visit) | id)")),
  list(id = "diag", data = "visits", f = paste0(visits, "diag(0 + factor(visit) | id)")),
  list(id = "homdiag", data = "visits", f = paste0(visits, "diag(0 + factor(visit) | id, hom = TRUE)"),
       tmb = paste0(visits, "diag(0 + factor(visit) | id)"), map = c(1, 1, 1, 1)),
  list(id = "cs", data = "visits", f = paste0(visits, "cs(0 + factor(visit) | id)")),
  list(id = "homcs", data = "visits", f = paste0(visits, "homcs(0 + factor(visit) | id)"),
       tmb = paste0(visits, "cs(0 + factor(visit) | id)"), map = c(1, 1, 1, 1, 2)),
  list(id = "ar1", data = "visits", f = paste0(visits, "ar1(0 + factor(visit) | id)")),
  list(id = "hetar1", data = "visits", f = paste0(visits, "hetar1(0 + factor(visit) | id)"),
       dense = "hetar1"),
  list(id = "toep", data = "visits", f = paste0(visits, "toep(0 + factor(visit) | id)")),
  list(id = "homtoep", data = "visits", f = paste0(visits, "toep(0 + factor(visit) | id, hom = TRUE)"),
       tmb = paste0(visits, "toep(0 + factor(visit) | id)"), map = c(1, 1, 1, 1, 2, 3, 4)),
  list(id = "ar1_site", data = "visits", f = paste0(visits, "ar1(0 + factor(visit) | id) + (1 | site)")),
  list(id = "sleep_diag", data = "sleepstudy", f = "Reaction ~ Days + diag(Days | Subject)"),
  list(id = "sleep_cs", data = "sleepstudy", f = "Reaction ~ Days + cs(Days | Subject)")
)
frames <- list(visits = d, sleepstudy = sleep)
csv <- list(visits = "cases/structured_visits.csv", sleepstudy = "sleepstudy")

# -- dense V: the (REML) criterion and lme4's SEs at given Sigma and sigma -------------------
X_of <- function(d) model.matrix(~ x + factor(visit), d)
Z_of <- function(d) model.matrix(~ 0 + factor(visit), d)
dense_parts <- function(d, Sigma, sigma) {
  X <- X_of(d); Z <- Z_of(d); y <- d$y
  ids <- split(seq_len(nrow(d)), d$id)
  logdet <- 0; XtVX <- 0; XtVy <- 0; Vinv <- list()
  for (rows in ids) {
    V <- Z[rows, , drop = FALSE] %*% Sigma %*% t(Z[rows, , drop = FALSE]) + sigma^2 * diag(length(rows))
    R <- chol(V); logdet <- logdet + 2 * sum(log(diag(R)))
    W <- chol2inv(R); Vinv[[length(Vinv) + 1]] <- list(rows = rows, W = W)
    XtVX <- XtVX + t(X[rows, , drop = FALSE]) %*% W %*% X[rows, , drop = FALSE]
    XtVy <- XtVy + t(X[rows, , drop = FALSE]) %*% W %*% y[rows]
  }
  beta <- solve(XtVX, XtVy)
  r2 <- 0
  for (b in Vinv) { e <- y[b$rows] - X[b$rows, , drop = FALSE] %*% beta; r2 <- r2 + sum(e * (b$W %*% e)) }
  list(logdet = logdet, XtVX = XtVX, beta = drop(beta), r2 = r2, n = nrow(X), p = ncol(X))
}
dense_criterion <- function(parts, reml) {
  n <- parts$n; p <- parts$p
  if (reml) parts$logdet + as.numeric(determinant(parts$XtVX)$modulus) + parts$r2 + (n - p) * log(2 * pi)
  else parts$logdet + parts$r2 + n * log(2 * pi)
}
ar1_sigma <- function(sd, rho) diag(sd, k) %*% (rho^abs(outer(1:k, 1:k, "-"))) %*% diag(sd, k)
dense_fit <- function(d, kind, reml) {
  nsd <- if (kind == "hetar1") k else 1
  unpack <- function(par) list(sd = exp(par[1:nsd]), rho = tanh(par[nsd + 1]), sigma = exp(par[nsd + 2]))
  objective <- function(par) {
    q <- unpack(par)
    dense_criterion(dense_parts(d, ar1_sigma(rep(q$sd, length.out = k), q$rho), q$sigma), reml)
  }
  starts <- list(c(rep(0, nsd), 0, 0), c(rep(0.3, nsd), 0.7, -0.3), c(rep(-0.2, nsd), 0.3, 0.2))
  fits <- lapply(starts, function(s) nlminb(s, objective, control = list(rel.tol = 1e-12,
                                                                          eval.max = 5000, iter.max = 2000)))
  best <- fits[[which.min(sapply(fits, `[[`, "objective"))]]
  hessian <- optimHess(best$par, objective)  # pdHess: a positive definite Hessian at the optimum
  q <- unpack(best$par)
  Sigma <- ar1_sigma(rep(q$sd, length.out = k), q$rho)
  parts <- dense_parts(d, Sigma, q$sigma)
  se <- sqrt(diag(solve(parts$XtVX)))
  names(parts$beta) <- names(se) <- colnames(X_of(d))
  list(criterion = best$objective, fixef = as.list(parts$beta), se = as.list(se),
       se_given_theta = as.list(se), sigma = q$sigma,
       terms = list(list(group = "id", sd = rep(q$sd, length.out = k), cor = cov2cor(Sigma))),
       pdHess = all(eigen(hessian, symmetric = TRUE, only.values = TRUE)$values > 0),
       message = best$message, convergence = best$convergence,
       engine = "dense-V nlminb")
}

terms_of <- function(vc) {
  lapply(names(vc), function(g) {
    m <- vc[[g]]
    cor <- attr(m, "correlation"); if (is.null(cor)) cor <- diag(length(attr(m, "stddev")))
    list(group = g, sd = unname(attr(m, "stddev")), cor = unname(as.matrix(cor)))
  })
}
tmb_fit <- function(spec, reml) {
  frame <- frames[[spec$data]]
  f <- as.formula(if (is.null(spec$tmb)) spec$f else spec$tmb)
  map <- if (is.null(spec$map)) list() else list(theta = factor(spec$map))
  m <- glmmTMB(f, frame, REML = reml, map = map)
  vc <- VarCorr(m)$cond
  se_theta <- NULL
  if (spec$data == "visits" && length(vc) == 1) {  # lme4's SEs: (X'V^-1X)^-1 at the estimates
    Sigma <- vc[[1]]; attributes(Sigma) <- list(dim = dim(vc[[1]]))
    parts <- dense_parts(frame, Sigma, sigma(m))
    se_theta <- sqrt(diag(solve(parts$XtVX))); names(se_theta) <- colnames(X_of(frame))
    se_theta <- as.list(se_theta)
  }
  list(criterion = -2 * as.numeric(logLik(m)), fixef = as.list(fixef(m)$cond),
       se = as.list(sqrt(diag(vcov(m)$cond))), se_given_theta = se_theta,
       sigma = sigma(m), terms = terms_of(vc), pdHess = m$sdr$pdHess,
       message = m$fit$message, convergence = m$fit$convergence,
       engine = paste("glmmTMB", packageVersion("glmmTMB"),
                      if (length(map)) "(sd parameters tied by map)" else ""))
}

out <- lapply(models, function(spec) {
  record <- list(id = spec$id, data = csv[[spec$data]], formula = spec$f)
  for (method in c("REML", "ML")) {
    reml <- method == "REML"
    record[[method]] <- if (!is.null(spec$dense)) dense_fit(frames[[spec$data]], spec$dense, reml)
                        else tmb_fit(spec, reml)
  }
  if (spec$id == "us") {
    for (method in c("REML", "ML")) {
      m <- lmer(as.formula(spec$f), frames[[spec$data]], REML = method == "REML",
                control = lmerControl(check.conv.singular = "ignore"))
      record[[method]]$lme4_criterion <- if (method == "REML") REMLcrit(m) else deviance(m)
      record[[method]]$lme4_fixef <- as.list(fixef(m))
    }
  }
  if (spec$id == "ar1") {  # the dense-V code of hetar1 on glmmTMB's homogeneous ar1
    for (method in c("REML", "ML")) {
      check <- dense_fit(frames[[spec$data]], "ar1", method == "REML")
      record[[method]]$dense_check <- list(criterion = check$criterion, sigma = check$sigma,
                                           sd = check$terms[[1]]$sd[1],
                                           rho = check$terms[[1]]$cor[1, 2])
    }
  }
  cat(sprintf("%-10s REML %.8f ML %.8f  pdHess %s %s\n", spec$id, record$REML$criterion,
              record$ML$criterion, record$REML$pdHess, record$ML$pdHess))
  record
})
info <- list(glmmTMB = as.character(packageVersion("glmmTMB")),
             lme4 = as.character(packageVersion("lme4")), R = R.version.string)
writeLines(toJSON(list(versions = info, models = out), auto_unbox = TRUE, digits = NA,
                  pretty = TRUE, null = "null"), "glmmtmb_structures.json")
