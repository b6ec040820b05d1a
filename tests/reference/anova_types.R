# lmerTest's anova(m, type = 1 | 2 | 3) with Satterthwaite and Kenward-Roger, for
# tests/test_anova_types.py, on shared and classic reference models (REML fits).
# Usage (from tests/reference): Rscript anova_types.R OUT.json
suppressMessages({library(lmerTest); library(pbkrtest); library(jsonlite)})
out_file <- commandArgs(trailingOnly = TRUE)[1]
ids <- c("orthodont", "ergostool", "classic/oats", "classic/ham", "classic/cake", "classic/pixel",
         "classic/mathach", "classic/carrots", "classic/chickweight", "classic/machines_nested")
load_case <- function(id) {
  rec <- fromJSON(paste0(id, ".json"))
  if (is.null(rec$factors)) {  # a shared model: bundled data, label columns as factors
    d <- read.csv(file.path("..", "..", "src", "mixedmodels", "datasets", "data", rec$data),
                  stringsAsFactors = TRUE)
    for (v in intersect(c("Subject", "Rail"), names(d))) d[[v]] <- factor(d[[v]])
  } else {
    d <- read.csv(file.path(dirname(id), "data", rec$data), na.strings = "NA")
    for (v in rec$factors) d[[v]] <- factor(d[[v]])
  }
  list(formula = rec$formula, d = d)
}
# lme4's default optimizer stops early on some models (Orthodont, MathAchieve); as for the
# other references, the better of the default and a tight-tolerance fit is used
tight <- lmerControl(optimizer = "nloptwrap", calc.derivs = FALSE,
                     optCtrl = list(ftol_abs = 1e-15, ftol_rel = 1e-15, xtol_abs = 1e-12,
                                    xtol_rel = 1e-12, maxeval = 1e5))
out <- lapply(ids, function(id) {
  k <- load_case(id)
  m <- lmer(as.formula(k$formula), k$d, control = tight)
  m_default <- lmer(as.formula(k$formula), k$d)
  if (REMLcrit(m_default) < REMLcrit(m)) m <- m_default
  tables <- list()
  for (type in c("1", "2", "3")) for (ddf in c("Satterthwaite", "Kenward-Roger")) {
    a <- anova(m, type = type, ddf = ddf)
    tables[[paste0("type", type, "_", ddf)]] <- lapply(rownames(a), function(r)
      list(term = r, F = a[r, "F value"], numdf = a[r, "NumDF"], dendf = a[r, "DenDF"], p = a[r, "Pr(>F)"],
           sumsq = a[r, "Sum Sq"], meansq = a[r, "Mean Sq"]))
  }
  list(id = id, formula = k$formula, tables = tables)
})
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE), out_file)
