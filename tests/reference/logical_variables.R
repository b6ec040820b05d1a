# lme4 fits of sleepstudy with logical variables in the formula (R codes them as factors of levels
# FALSE and TRUE: bTRUE; 0 + b gives bFALSE and bTRUE; an interaction's variables in the order of
# their first appearance: late + Days:late has late:Days), for tests/test_logical_variables.py.
# Usage: Rscript logical_variables.R OUT.json
suppressMessages({library(lme4); library(lmerTest); library(jsonlite)})
out_file <- commandArgs(trailingOnly = TRUE)[1]
d <- read.csv(file.path("..", "..", "src", "mixedmodels", "datasets", "data", "sleepstudy.csv"))
d$Subject <- factor(d$Subject)
d$even <- d$Days %% 2 == 0
d$late <- d$Days >= 5
d$gap <- ifelse(d$Days == 3, NA, d$Days %% 3 == 0)  # a logical with missing values
d$slow <- d$Reaction > 300  # a logical response: 0 and 1
formulas <- c("Reaction ~ even + (1 | Subject)",
              "Reaction ~ 0 + even + (1 | Subject)",
              "Reaction ~ Days:even + (1 | Subject)",
              "Reaction ~ even * Days + (1 | Subject)",
              "Reaction ~ Days + (late | Subject)",
              "Reaction ~ I(Days > 4) + Days + (1 | Subject)",
              "Reaction ~ I(even * 2) + (1 | Subject)",
              "Reaction ~ gap + Days + (1 | Subject)",
              "Reaction ~ even + late + (1 | Subject)",
              "Reaction ~ Days + (1 | Subject) + (1 | Subject:late)",
              "slow ~ Days + (1 | Subject)",
              "I(Reaction > 300) ~ Days + (1 | Subject)",
              "Reaction ~ Days + offset(late) + (1 | Subject)",
              "Reaction ~ late + Days:late + (1 | Subject)",
              "Reaction ~ even + late:even + (1 | Subject)")
newdata <- data.frame(Days = c(0, 3, 5, 8), Subject = factor(c("308", "309", "999", "372")))
newdata$even <- newdata$Days %% 2 == 0
newdata$late <- newdata$Days >= 5
newdata$gap <- newdata$Days %% 3 == 0
out <- lapply(formulas, function(f) {
  m <- lmerTest::lmer(as.formula(f), d)
  a <- anova(m, type = 3)
  list(formula = f, criterion = REMLcrit(m), nobs = nobs(m), fixef = as.list(fixef(m)),
       se = as.list(sqrt(diag(as.matrix(vcov(m))))),
       ranef_columns = colnames(ranef(m)$Subject),
       ranef_levels = lapply(ranef(m), rownames),
       predict_population = unname(predict(m, newdata = newdata, re.form = NA)),
       predict = unname(predict(m, newdata = newdata, allow.new.levels = TRUE)),
       anova = lapply(rownames(a), function(r) list(term = r, F = a[r, "F value"],
                                                   dendf = a[r, "DenDF"])))
})
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE), out_file)
