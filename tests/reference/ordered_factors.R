# lme4 fits and lmerTest's ANOVA tables with ordered factors, which R codes by polynomial
# contrasts (contr.poly: columns x.L, x.Q, x.C, x^4), for tests/test_ordered_factors.py.
# sleepstudy's Days cut into ordered bands: band3 (3 levels) and band5 (5 levels), and half
# (the first nine subjects, the others), an unordered factor. Writes, per
# formula: lme4's REML criterion, fixed-effect names, estimates and standard errors, theta,
# lmerTest's type I and III tables (Satterthwaite), and predictions on new data. As for the
# other references, the better of lme4's default fit and a tight-tolerance one is kept.
# Usage (from tests/reference): Rscript ordered_factors.R ordered_factors.json
suppressMessages({library(lmerTest); library(jsonlite)})
out_file <- commandArgs(trailingOnly = TRUE)[1]
d <- read.csv(file.path("..", "..", "src", "mixedmodels", "datasets", "data", "sleepstudy.csv"))
d$Subject <- factor(d$Subject)
d$half <- factor(ifelse(d$Subject %in% levels(d$Subject)[1:9], "first", "second"))
d$band3 <- cut(d$Days, c(-1, 2, 5, 9), labels = c("early", "mid", "late"),
               ordered_result = TRUE)
d$band5 <- cut(d$Days, c(-1, 1, 3, 5, 7, 9), labels = c("d01", "d23", "d45", "d67", "d89"),
               ordered_result = TRUE)
new <- data.frame(Days = c(0, 4, 7, 9), Subject = c("308", "330", "372", "308"))
new$half <- d$half[match(new$Subject, d$Subject)]
new$band3 <- cut(new$Days, c(-1, 2, 5, 9), labels = c("early", "mid", "late"),
                 ordered_result = TRUE)
new$band5 <- cut(new$Days, c(-1, 1, 3, 5, 7, 9), labels = c("d01", "d23", "d45", "d67", "d89"),
                 ordered_result = TRUE)
formulas <- c("Reaction ~ band3 + (1 | Subject)",
              "Reaction ~ band5 + (1 | Subject)",
              "Reaction ~ band5 + Days + (Days | Subject)",
              "Reaction ~ band3 * Days + (1 | Subject)",
              "Reaction ~ band3 * half + (1 | Subject)",
              "Reaction ~ 0 + band3 + Days + (1 | Subject)",
              "Reaction ~ Days + (band3 | Subject)",
              "Reaction ~ factor(band5) + (1 | Subject)",
              "Reaction ~ C(band3) + Days + (1 | Subject)",
              "Reaction ~ ordered(Days) + (1 | Subject)",
              "Reaction ~ C(band5, contr.sum) + (1 | Subject)")
tight <- lmerControl(optimizer = "nloptwrap", calc.derivs = FALSE,
                     optCtrl = list(ftol_abs = 1e-15, ftol_rel = 1e-15, xtol_abs = 1e-12,
                                    xtol_rel = 1e-12, maxeval = 1e5))
table_json <- function(a) lapply(rownames(a), function(r)
  list(term = r, F = a[r, "F value"], numdf = a[r, "NumDF"], dendf = a[r, "DenDF"]))
out <- lapply(formulas, function(f) {
  m <- lmer(as.formula(f), d, control = tight)
  m_default <- lmer(as.formula(f), d)
  if (REMLcrit(m_default) < REMLcrit(m)) m <- m_default
  list(formula = f, reml_criterion = REMLcrit(m), fixef = as.list(fixef(m)),
       se = as.list(sqrt(diag(as.matrix(vcov(m))))), theta = unname(getME(m, "theta")),
       anova = list(type1 = table_json(anova(m, type = 1)),
                    type3 = table_json(anova(m, type = 3))),
       predict_new = unname(predict(m, newdata = new)))
})
writeLines(toJSON(list(generator = "tests/reference/ordered_factors.R",
                       lme4 = as.character(packageVersion("lme4")),
                       lmerTest = as.character(packageVersion("lmerTest")),
                       R = R.version.string, new = new, models = out),
                  auto_unbox = TRUE, digits = NA, pretty = TRUE), out_file)
