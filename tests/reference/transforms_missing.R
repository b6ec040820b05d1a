# lme4 fits with stateful transforms (poly, scale, bs) on data with missing values, for
# tests/test_transforms_missing.py. R's model frame evaluates every term on all the rows, then
# drops the incomplete ones: the transforms' state comes from all the rows. sleepstudy with
# half (the first nine subjects, the others), in three versions: y (Reaction missing for Days >= 8), x (Days with missing values at the rows
# x_missing), g (Subject missing at the rows g_missing). Writes, per formula: lme4's REML
# criterion, fixed effects and standard errors, theta, lmerTest's type I and III tables
# (Satterthwaite), predictions on new data (with and
# without the random effects; none with an offset, whose scale(Days) R's predict evaluates
# anew on the new data rather than with the fit's centre and scale); a formula R refuses has
# its error message instead. As for the other references, the better of lme4's default fit and
# a tight-tolerance one is kept.
# Usage (from tests/reference): Rscript transforms_missing.R transforms_missing.json
suppressMessages({library(lmerTest); library(splines); library(jsonlite)})
out_file <- commandArgs(trailingOnly = TRUE)[1]
d <- read.csv(file.path("..", "..", "src", "mixedmodels", "datasets", "data", "sleepstudy.csv"))
d$Subject <- factor(d$Subject)
d$half <- factor(ifelse(d$Subject %in% levels(d$Subject)[1:9], "first", "second"))
x_missing <- c(3L, 50L, 100L, 151L)  # rows (from 1) where x is missing
g_missing <- which(d$Days == 0 & d$Subject %in% c("308", "309", "310"))
data <- list(
  y = transform(d, y = ifelse(Days >= 8, NA, Reaction)),
  x = transform(d, x = replace(Days, x_missing, NA)),
  g = transform(d, g = factor(replace(as.character(Subject), g_missing, NA))))
new <- data.frame(Days = c(0, 4.5, 8, 9), x = c(0, 4.5, 8, 9),
                  Subject = factor(c("308", "330", "372", "308"), levels = levels(d$Subject)))
new$g <- new$Subject
new$half <- d$half[match(new$Subject, d$Subject)]
formulas <- list(
  y = c("y ~ poly(Days, 2) + Days + (1 | Subject)", "y ~ poly(Days, 3) + (1 | Subject)",
        "y ~ scale(Days) + (1 | Subject)", "y ~ scale(Days, scale = FALSE) + (1 | Subject)",
        "y ~ bs(Days, df = 4) + (1 | Subject)", "y ~ scale(Days) * half + (1 | Subject)",
        "y ~ Days + (scale(Days) | Subject)", "y ~ Days + (poly(Days, 2) | Subject)",
        "y ~ poly(Days, 2, raw = TRUE) + (1 | Subject)"),
  x = c("Reaction ~ scale(x) + (1 | Subject)", "scale(Reaction) ~ x + (1 | Subject)",
        "Reaction ~ x + offset(scale(Days)) + (1 | Subject)",
        "Reaction ~ poly(x, 2) + (1 | Subject)"),
  g = "Reaction ~ poly(Days, 2) + (1 | g)")
cases <- unlist(lapply(names(formulas), function(name)
  lapply(formulas[[name]], function(f) list(data = name, formula = f))), recursive = FALSE)
tight <- lmerControl(optimizer = "nloptwrap", calc.derivs = FALSE,
                     optCtrl = list(ftol_abs = 1e-15, ftol_rel = 1e-15, xtol_abs = 1e-12,
                                    xtol_rel = 1e-12, maxeval = 1e5))
table_json <- function(a) lapply(rownames(a), function(r)
  list(term = r, F = a[r, "F value"], numdf = a[r, "NumDF"], dendf = a[r, "DenDF"]))
best_fit <- function(f, d) {
  m <- lmer(f, d, control = tight)
  m_default <- lmer(f, d)
  if (REMLcrit(m_default) < REMLcrit(m)) m_default else m
}
out <- lapply(cases, function(case) {
  f <- as.formula(case$formula)
  m <- try(best_fit(f, data[[case$data]]), silent = TRUE)
  if (inherits(m, "try-error"))
    return(list(data = case$data, formula = case$formula,
                error = conditionMessage(attr(m, "condition"))))
  record <- list(data = case$data, formula = case$formula, reml_criterion = REMLcrit(m),
                 nobs = nobs(m), fixef = as.list(fixef(m)),
                 se = as.list(sqrt(diag(as.matrix(vcov(m))))),
                 theta = unname(getME(m, "theta")),
                 anova = list(type1 = table_json(anova(m, type = 1)),
                              type3 = table_json(anova(m, type = 3))))
  if (!grepl("offset", case$formula))
    record <- c(record, list(predict_new = unname(predict(m, newdata = new)),
                             predict_new_population = unname(predict(m, newdata = new,
                                                                     re.form = NA))))
  record
})
writeLines(toJSON(list(generator = "tests/reference/transforms_missing.R",
                       lme4 = as.character(packageVersion("lme4")), R = R.version.string,
                       x_missing = x_missing - 1L, g_missing = g_missing - 1L,
                       new = new, cases = out),
                  auto_unbox = TRUE, digits = NA, pretty = TRUE), out_file)
