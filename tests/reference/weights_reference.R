# lme4 / lmerTest / pbkrtest with prior weights, for tests/test_weights.py.
# Reads the bundled CSVs; the weights are simple functions of the row number or of a column,
# recomputed in the test. Usage (from the repository root):
#   Rscript tests/reference/weights_reference.R OUT.json
suppressMessages({library(lmerTest); library(pbkrtest); library(jsonlite)})
out_file <- commandArgs(trailingOnly = TRUE)[1]
data_dir <- "src/mixedmodels/datasets/data"
read_data <- function(file, labels = character()) {
  d <- read.csv(file.path(data_dir, file), colClasses = setNames(rep("character", length(labels)), labels))
  for (v in names(d)) if (is.character(d[[v]])) d[[v]] <- factor(d[[v]])
  d$row <- seq_len(nrow(d)) - 1  # 0-based, as pandas
  d
}
sleep <- read_data("sleepstudy.csv", "Subject"); sleep$w <- 1 + sleep$Days / 5
pastes <- read_data("Pastes.csv"); pastes$w <- 1 + (pastes$row %% 3) / 2
penicillin <- read_data("Penicillin.csv"); penicillin$w <- 0.5 + (penicillin$row %% 4) / 4
# pbkrtest's Kenward-Roger does not use the weights; the same model without weights, its rows
# scaled by sqrt(w) (ys = sqrt(w) y, columns sqrt(w) x), is the reference for it instead
scaled <- function(d, y) { d$sw <- sqrt(d$w); d$ys <- d$sw * d[[y]]; d }
sleep <- scaled(sleep, "Reaction"); sleep$swDays <- sleep$sw * sleep$Days
pastes <- scaled(pastes, "strength"); penicillin <- scaled(penicillin, "diameter")
cases <- list(
  list(id = "sleepstudy", data = "sleepstudy", d = sleep, f = "Reaction ~ Days + (Days | Subject)", weights = "1 + Days / 5",
       scaled = "ys ~ 0 + sw + swDays + (0 + sw + swDays | Subject)"),
  list(id = "pastes", data = "pastes", d = pastes, f = "strength ~ 1 + (1 | batch/cask)", weights = "1 + (row % 3) / 2",
       scaled = "ys ~ 0 + sw + (0 + sw | batch) + (0 + sw | batch:cask)"),
  list(id = "penicillin", data = "penicillin", d = penicillin, f = "diameter ~ 1 + (1 | plate) + (1 | sample)", weights = "0.5 + (row % 4) / 4",
       scaled = "ys ~ 0 + sw + (0 + sw | plate) + (0 + sw | sample)")
)
num <- function(x) unname(as.numeric(x))
out <- lapply(cases, function(k) {
  res <- list(id = k$id, data = k$data, formula = k$f, weights = k$weights)
  for (reml in c(TRUE, FALSE)) {
    m <- lmerTest::lmer(as.formula(k$f), k$d, REML = reml, weights = w)
    fm <- as(m, "lmerMod")
    vc <- as.data.frame(VarCorr(fm))
    re <- as.data.frame(ranef(fm, condVar = TRUE))
    co <- summary(m, ddf = "Satterthwaite")$coefficients
    r <- list(criterion = if (reml) REMLcrit(fm) else deviance(fm), logLik = num(logLik(fm)),
              fixef = as.list(fixef(fm)), se = as.list(sqrt(diag(as.matrix(vcov(fm))))),
              sigma = sigma(fm), sdcor = vc$sdcor, condval = re$condval, condsd = re$condsd,
              fitted_head = num(head(fitted(fm), 10)), resid_head = num(head(residuals(fm), 10)),
              pearson_head = num(head(residuals(fm, type = "pearson"), 10)),
              hat_head = num(head(hatvalues(fm), 10)),
              cooks_head = num(head(cooks.distance(fm), 10)),
              cooks_unweighted_head = num(head(cooks.distance(
                lme4::lmer(as.formula(k$f), k$d, REML = reml)), 10)),
              satterthwaite_df = num(co[, "df"]))
    a <- ranova(m)
    r$ranova_logLik <- num(a$logLik)
    if (reml) {
      ms <- lmerTest::lmer(as.formula(k$scaled), k$d)
      r$scaled_criterion <- REMLcrit(ms) - sum(log(k$d$w))
      r$kenward_roger_df <- num(summary(ms, ddf = "Kenward-Roger")$coefficients[, "df"])
    } else {
      ci <- suppressMessages(suppressWarnings(confint(fm, oldNames = FALSE)))
      r$profile_ci <- lapply(rownames(ci), function(p) list(param = p, lower = ci[p, 1], upper = ci[p, 2]))
    }
    res[[if (reml) "REML" else "ML"]] <- r
  }
  res
})
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE, na = "null"), out_file)
