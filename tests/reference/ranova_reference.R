# lmerTest's ranova() tables for tests/test_ranova.py. Reads the bundled CSVs; writes JSON.
# Usage (from the repository root): Rscript tests/reference/ranova_reference.R OUT.json
suppressMessages({library(lmerTest); library(jsonlite)})
out_file <- commandArgs(trailingOnly = TRUE)[1]
data_dir <- "src/mixedmodels/datasets/data"
read_data <- function(file, labels = character()) {
  d <- read.csv(file.path(data_dir, file), colClasses = setNames(rep("character", length(labels)), labels))
  for (v in names(d)) if (is.character(d[[v]])) d[[v]] <- factor(d[[v]])
  d
}
sleep <- read_data("sleepstudy.csv", "Subject")
cases <- list(
  list(data = "sleepstudy", d = sleep, f = "Reaction ~ Days + (Days | Subject)", reml = TRUE, reduce = TRUE),
  list(data = "sleepstudy", d = sleep, f = "Reaction ~ Days + (Days | Subject)", reml = FALSE, reduce = TRUE),
  list(data = "sleepstudy", d = sleep, f = "Reaction ~ Days + (Days | Subject)", reml = TRUE, reduce = FALSE),
  list(data = "sleepstudy", d = sleep, f = "Reaction ~ Days + (Days || Subject)", reml = TRUE, reduce = TRUE),
  list(data = "sleepstudy", d = sleep, f = "Reaction ~ Days + (1 | Subject)", reml = TRUE, reduce = TRUE),
  list(data = "sleepstudy", d = sleep, f = "Reaction ~ Days + (1 | Subject)", reml = FALSE, reduce = TRUE),
  list(data = "pastes", d = read_data("Pastes.csv"), f = "strength ~ 1 + (1 | batch/cask)", reml = TRUE, reduce = TRUE),
  list(data = "penicillin", d = read_data("Penicillin.csv"), f = "diameter ~ 1 + (1 | plate) + (1 | sample)", reml = TRUE, reduce = TRUE),
  list(data = "orthodont", d = read_data("Orthodont.csv", "Subject"), f = "distance ~ age * Sex + (age | Subject)", reml = TRUE, reduce = TRUE),
  list(data = "ergostool", d = read_data("ergoStool.csv", "Subject"), f = "effort ~ Type + (1 | Subject)", reml = FALSE, reduce = TRUE)
)
out <- lapply(cases, function(k) {
  m <- lmer(as.formula(k$f), k$d, REML = k$reml)
  a <- ranova(m, reduce.terms = k$reduce)
  list(data = k$data, formula = k$f, reml = k$reml, reduce_terms = k$reduce,
       rows = lapply(seq_len(nrow(a)), function(i) list(label = rownames(a)[i], npar = a$npar[i],
         logLik = a$logLik[i], AIC = a$AIC[i], LRT = a$LRT[i], Df = a$Df[i], p = a[i, "Pr(>Chisq)"])))
})
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE, na = "null"), out_file)
