# Reference likelihood-ratio tests from lme4's anova(m0, m1, ...) for tests/test_lrt.py.
# Reads the bundled CSVs (src/mixedmodels/datasets/data) and writes tests/reference/lrt.json.
# Usage (from the repository root): Rscript tests/reference/lrt_reference.R [DATA_DIR [OUT_JSON]]
#
# Every model is fitted with tight optimizer tolerances (lme4's defaults stop early on some
# models; the better of the tight and the default fit is kept). anova() then refits REML fits by
# ML with its own refitML (bobyqa from the REML theta); the ML deviances it reports are checked
# against direct tight ML fits of the same models, and the table is rebuilt from those when the
# direct fit is better, so the reference holds the ML optimum rather than one optimizer's stop.
suppressMessages({ library(lme4); library(jsonlite) })
args <- commandArgs(trailingOnly = TRUE)
data_dir <- if (length(args) >= 1) args[1] else "src/mixedmodels/datasets/data"
out_json <- if (length(args) >= 2) args[2] else "tests/reference/lrt.json"

read_data <- function(file) {
  path <- file.path(data_dir, file)
  labels <- intersect(names(read.csv(path, nrows = 1)), c("Subject", "Rail"))  # numeric-looking ids
  d <- read.csv(path, colClasses = setNames(rep("character", length(labels)), labels))
  for (v in names(d)) if (is.character(d[[v]])) d[[v]] <- factor(d[[v]])
  d
}
files <- c(sleepstudy = "sleepstudy.csv", penicillin = "Penicillin.csv", pastes = "Pastes.csv",
           orthodont = "Orthodont.csv", ergostool = "ergoStool.csv", dyestuff = "Dyestuff.csv")

tight <- lmerControl(optimizer = "nloptwrap", calc.derivs = FALSE,
                     optCtrl = list(ftol_abs = 1e-15, ftol_rel = 1e-15, xtol_abs = 1e-12,
                                    xtol_rel = 1e-12, maxeval = 1e5))
crit <- function(fit) if (isREML(fit)) REMLcrit(fit) else deviance(fit)
best_fit <- function(f, d, REML) {
  a <- suppressMessages(lmer(f, d, REML = REML, control = tight))
  b <- suppressMessages(lmer(f, d, REML = REML))
  fit <- if (crit(b) < crit(a)) b else a
  fit@call$formula <- f  # anova() deparses the call's formula for its heading
  fit
}

# id, data set, formulas in the order they are passed to anova(), REML flags, refit flag
comparisons <- list(
  list(id = "sleepstudy_slope_vs_intercept", data = "sleepstudy", refit = TRUE,
       formulas = c("Reaction ~ Days + (Days | Subject)", "Reaction ~ Days + (1 | Subject)"),
       reml = c(TRUE, TRUE)),
  list(id = "sleepstudy_corr_vs_uncorr", data = "sleepstudy", refit = TRUE,
       formulas = c("Reaction ~ Days + (Days | Subject)", "Reaction ~ Days + (Days || Subject)"),
       reml = c(TRUE, TRUE)),
  list(id = "sleepstudy_fixed", data = "sleepstudy", refit = TRUE,
       formulas = c("Reaction ~ 1 + (1 | Subject)", "Reaction ~ Days + (1 | Subject)"),
       reml = c(TRUE, TRUE)),
  list(id = "sleepstudy_triple", data = "sleepstudy", refit = TRUE,
       formulas = c("Reaction ~ Days + (Days | Subject)", "Reaction ~ 1 + (1 | Subject)",
                    "Reaction ~ Days + (1 | Subject)"),
       reml = c(TRUE, TRUE, TRUE)),
  list(id = "sleepstudy_triple_ml", data = "sleepstudy", refit = TRUE,
       formulas = c("Reaction ~ Days + (1 | Subject)", "Reaction ~ Days + (Days | Subject)",
                    "Reaction ~ Days + (Days || Subject)"),
       reml = c(FALSE, FALSE, FALSE)),
  list(id = "sleepstudy_mixed_reml_ml", data = "sleepstudy", refit = TRUE,
       formulas = c("Reaction ~ Days + (1 | Subject)", "Reaction ~ Days + (Days | Subject)"),
       reml = c(FALSE, TRUE)),
  list(id = "sleepstudy_reml_norefit", data = "sleepstudy", refit = FALSE,
       formulas = c("Reaction ~ Days + (Days | Subject)", "Reaction ~ Days + (1 | Subject)"),
       reml = c(TRUE, TRUE)),
  list(id = "penicillin_crossed_vs_plate", data = "penicillin", refit = TRUE,
       formulas = c("diameter ~ 1 + (1 | plate) + (1 | sample)", "diameter ~ 1 + (1 | plate)"),
       reml = c(TRUE, TRUE)),
  list(id = "orthodont_sex", data = "orthodont", refit = TRUE,
       formulas = c("distance ~ age + (age | Subject)", "distance ~ age * Sex + (age | Subject)"),
       reml = c(TRUE, TRUE)),
  list(id = "pastes_nested_vs_cask", data = "pastes", refit = TRUE,
       formulas = c("strength ~ 1 + (1 | batch/cask)", "strength ~ 1 + (1 | cask:batch)"),
       reml = c(TRUE, TRUE)),
  list(id = "ergostool_type", data = "ergostool", refit = TRUE,
       formulas = c("effort ~ 1 + (1 | Subject)", "effort ~ Type + (1 | Subject)"),
       reml = c(TRUE, TRUE))
)

num <- function(x) unname(as.numeric(x))
out <- list(lme4_version = as.character(packageVersion("lme4")),
            R_version = paste(R.version$major, R.version$minor, sep = "."),
            comparisons = list())
for (cmp in comparisons) {
  cat("comparison", cmp$id, "\n")
  d <- read_data(files[[cmp$data]])
  fits <- Map(function(f, r) best_fit(as.formula(f), d, r), cmp$formulas, cmp$reml)
  names(fits) <- NULL
  refit_message <- FALSE
  a <- withCallingHandlers(
    do.call(anova, c(fits, list(refit = cmp$refit, model.names = cmp$formulas))),
    message = function(m) { refit_message <<- TRUE; invokeRestart("muffleMessage") })
  a <- as.data.frame(a)
  order <- match(rownames(a), cmp$formulas)
  # The ML optimum by direct tight fits (ML comparisons only), to check anova()'s refits.
  max_deviation <- NA
  if (cmp$refit || !any(cmp$reml)) {
    ml <- lapply(cmp$formulas[order], function(f) best_fit(as.formula(f), d, FALSE))
    direct <- -2 * num(sapply(ml, logLik))
    max_deviation <- max(abs(direct - a$deviance))
    if (any(direct < a$deviance - 1e-10)) {  # anova()'s refit stopped early: rebuild the table
      cat("  rebuilding from direct ML fits; max deviance change", max_deviation, "\n")
      llk <- -direct / 2
      npar <- a$npar
      a$AIC <- direct + 2 * npar
      a$BIC <- direct + log(nrow(d)) * npar
      a$logLik <- llk
      a$deviance <- direct
      a$Chisq <- 2 * pmax(0, c(NA, diff(llk)))
      a[["Pr(>Chisq)"]] <- ifelse(a$Df == 0, NA, pchisq(a$Chisq, a$Df, lower.tail = FALSE))
    }
  }
  out$comparisons[[length(out$comparisons) + 1]] <- list(
    id = cmp$id, data = cmp$data, data_file = files[[cmp$data]], nobs = nrow(d),
    refit = cmp$refit, refit_message = refit_message,
    models = lapply(seq_along(cmp$formulas), function(i)
      list(formula = cmp$formulas[i], reml = cmp$reml[i])),
    anova_ml_vs_direct_ml_max_abs_deviance = max_deviation,
    table = list(
      model = as.integer(order - 1),  # 0-based index into models, rows sorted by npar
      formula = rownames(a), npar = num(a$npar), AIC = num(a$AIC), BIC = num(a$BIC),
      logLik = num(a$logLik), deviance = num(a$deviance), Chisq = num(a$Chisq),
      Df = num(a$Df), p = num(a[["Pr(>Chisq)"]])))
  print(a)
}
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE, na = "null"), out_json)
