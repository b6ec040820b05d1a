# lme4 fits with R's operators on logical values and numbers inside a call (arithmetic reads a
# logical as 0/1, & and | a number as nonzero, ! binds looser than comparisons), and with
# factor(labels =), relevel() of a number's label, ifelse, pmin and pmax, for
# tests/test_formula_functions.py. Usage (from this folder): Rscript r_operators.R r_operators.json
# data/logic.csv: 120 rows, x ~ U(0, 10), h ~ U(0, 4), b = x > 3, c = h > 2, nn in 0..2, 10
# groups g of 12 (written by numpy, seed 3), k the row number modulo 7, f a, b, c in turn. lme4 reads a bar inside I() as a random-effects
# term (I(b | c) fails), so R's "or" has no case here.
suppressMessages({library(lme4); library(lmerTest); library(jsonlite)})
out_file <- commandArgs(trailingOnly = TRUE)[1]
logic <- read.csv(file.path("data", "logic.csv"))
sleep <- read.csv(file.path("..", "..", "src", "mixedmodels", "datasets", "data", "sleepstudy.csv"))
sleep$Subject <- factor(sleep$Subject)
cases <- list(
  list("logic", "y ~ I(-(x > 5)) + (1 | g)"),
  list("logic", "y ~ I((x > 5) + (h > 2)) + (1 | g)"),
  list("logic", "y ~ I((x > 5) * (h > 2)) + (1 | g)"),
  list("logic", "y ~ I((x > 5) - (h > 2)) + (1 | g)"),
  list("logic", "y ~ I(-b) + (1 | g)"),
  list("logic", "y ~ I(b + c) + (1 | g)"),
  list("logic", "y ~ I(!nn) + (1 | g)"),
  list("logic", "y ~ I(nn & b) + (1 | g)"),
  list("logic", "y ~ I(!b & c) + (1 | g)"),
  list("logic", "y ~ I(!x > 5) + (1 | g)"),
  list("logic", "y ~ log(x) + I(x * (x > 2)) + (1 | g)"),
  list("logic", "y ~ I(2 * k %% 3) + I(k / 0.5 %% 2) + I(x / 2 %/% 1) + (1 | g)"),
  list("logic", "y ~ I(f != \"a\" & b) + (1 | g)"),
  list("logic", "y ~ I(x > 2 & x < 5) + (1 | g)"),
  list("logic", "y ~ ifelse(x > 5 & b, 1, 0) + (1 | g)"),
  list("logic", "y ~ I(k %in% c(1, 2)) + I((x + 1)^-1) + (1 | g)"),
  list("sleep", "Reaction ~ factor(Days > 4, labels = c(\"early\", \"late\")) + (1 | Subject)"),
  list("sleep", paste("Reaction ~ factor(Days, levels = 0:9, labels = c(\"a\", \"a\", \"b\", \"b\",",
                      "\"c\", \"c\", \"d\", \"d\", \"e\", \"e\")) + (1 | Subject)")),
  list("sleep", "Reaction ~ relevel(factor(Days), \"3\") + (1 | Subject)"),
  list("sleep", "Reaction ~ relevel(factor(Days), 3) + (1 | Subject)"),
  list("sleep", "Reaction ~ pmin(Days, 5) + pmax(Days, 3) + (1 | Subject)"),
  list("sleep", "Reaction ~ ifelse(Days > 4, log(Days), 0) + (1 | Subject)"))
out <- lapply(cases, function(case) {
  data <- if (case[[1]] == "logic") logic else sleep
  m <- lmer(as.formula(case[[2]]), data)
  list(data = case[[1]], formula = case[[2]], criterion = REMLcrit(m),
       fixef = as.list(fixef(m)))
})
# Names R does not read as names are backquoted in the model's names (logic.csv with x as
# `word len` and b as `my f`, levels "no" and "yes")
spaced <- data.frame(y = logic$y, `word len` = logic$x, g = logic$g,
                     `my f` = ifelse(logic$b, "yes", "no"), check.names = FALSE)
m <- lmer(y ~ `word len` * `my f` + (`word len` | g), spaced)
out[[length(out) + 1]] <- list(data = "spaced", formula = "y ~ `word len` * `my f` + (`word len` | g)",
                               criterion = REMLcrit(m), fixef = as.list(fixef(m)),
                               ranef_columns = colnames(ranef(m)$g),
                               anova_rows = rownames(lmerTest::as_lmerModLmerTest(m) |> anova()))
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE), out_file)
