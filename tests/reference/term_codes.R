# R's rule for coding the factors of a term (contrasts where the term without the factor is
# empty or contained in a term before it, else one indicator per level; without an intercept
# the first factor by indicators): model.matrix's columns and rank for formulas whose terms'
# margins are not all in the model, and lme4/lmerTest fits of some of them and of other
# formulas whose columns R names in its own way (%in%, raw polynomials in interactions, coding
# functions called with arguments), for tests/test_term_codes.py.
# Usage: Rscript term_codes.R OUT.json   (writes data/term_codes.csv beside OUT.json's folder)
suppressMessages({library(lme4); library(lmerTest); library(jsonlite); library(splines)})
out_file <- commandArgs(trailingOnly = TRUE)[1]
set.seed(11)
n <- 240
d <- data.frame(a = sample(c("lo", "hi"), n, TRUE), b = sample(c("x", "y", "z"), n, TRUE),
                c = sample(c("p", "q"), n, TRUE), w = sample(c("m", "n", "o"), n, TRUE),
                x = round(rnorm(n), 3), z = round(runif(n), 3),
                g = sprintf("g%02d", rep(1:24, each = 10)))
d$y <- round(1 + 0.5 * (d$a == "hi") + 0.3 * (d$b == "y") - 0.4 * (d$b == "z") * (d$c == "q") +
             0.2 * d$x + rnorm(24)[as.integer(factor(d$g))] +
             0.5 * rnorm(24)[as.integer(factor(d$g))] * (d$a == "hi") + rnorm(n), 3)
d$t <- rep(c(1, 2, 10, 20), length.out = n)  # numbers whose text sorts otherwise
write.csv(d, file.path(dirname(out_file), "data", "term_codes.csv"), row.names = FALSE)
for (v in c("a", "b", "c", "w", "g")) d[[v]] <- factor(d[[v]])
d$o <- factor(d$b, levels = c("x", "y", "z"), ordered = TRUE)  # polynomial contrasts
d$lg <- d$x > 0  # a logical: a factor of levels FALSE and TRUE
matrices <- c("~ a:b", "~ 0 + a:b", "~ a:b + c", "~ a:b:c", "~ a * b - a", "~ a * b - b",
              "~ a * b * c - a:b", "~ a + b:c", "~ a:b + a:c", "~ x + a:b", "~ b:a", "~ a:b + b",
              "~ c + a:b:c", "~ a + b + a:b:c", "~ x:a:b", "~ a * b * c - a:b:c - a",
              "~ 0 + a + a:b", "~ 0 + a:x", "~ x:z + a:x", "~ 0 + x:z + a:x", "~ a:b:c + a:w",
              "~ 0 + x + a:b", "~ 0 + b + a", "~ 0 + a:x + b", "~ b:a + a:c",
              "~ a:b + b:c + a:c", "~ a:x + b:x", "~ x + a:x:b")
model_matrix <- lapply(matrices, function(f) {
  m <- model.matrix(as.formula(f), d)
  list(formula = f, columns = colnames(m), rank = qr(m)$rank)
})
fits <- c("y ~ a:b + (1 | g)", "y ~ a:b + c + (1 | g)", "y ~ a + b:c + (1 | g)",
          "y ~ a:b + a:c + (1 | g)", "y ~ x + a:b + (1 | g)", "y ~ c + a:b:c + (1 | g)",
          "y ~ a * b * c - a:b + (1 | g)", "y ~ x:z + a:x + (1 | g)",
          "y ~ 0 + a:x + b + (1 | g)", "y ~ a:c + (a:c | g)", "y ~ x + (0 + a:c | g)",
          # terms that formulaic evaluates: functions, codings, ordered factors, logicals
          "y ~ factor(a):factor(b) + (1 | g)", "y ~ C(a, contr.sum):b + (1 | g)",
          "y ~ o:a + (1 | g)", "y ~ poly(x, 2):a + (1 | g)", "y ~ lg:b + (1 | g)",
          "y ~ x + I(x^2):a + (1 | g)", "y ~ c + o:c + a:o + (1 | g)",
          # R's order of an interaction's variables: that of their first appearance
          "y ~ I(x^2) + a:I(x^2) + (1 | g)", "y ~ a * b - a + (1 | g)",
          # R's nesting operator: the interaction alone
          "y ~ x %in% a + (1 | g)", "y ~ b %in% a + (1 | g)",
          # raw polynomials in interactions, numbered from 1
          "y ~ poly(x, 2, raw = TRUE):b + (1 | g)",
          # R's coding functions called with their arguments: a matrix with column names
          "y ~ C(b, contr.treatment(3, base = 2)) + (1 | g)", "y ~ C(b, contr.SAS(3)) + (1 | g)",
          "y ~ C(b, contr.sum(3)) * x + (1 | g)", "y ~ C(b, contr.helmert(3)) + (1 | g)",
          "y ~ C(b, contr.poly(3)):a + (1 | g)", "y ~ a * C(b, contr.treatment(3)) + (1 | g)",
          # R's functions of factors and types
          "y ~ as.factor(t) + (1 | g)", "y ~ as.numeric(lg) * a + (1 | g)",
          "y ~ as.character(t) + (1 | g)", "y ~ as.integer(x * 3) + (1 | g)",
          "y ~ factor(t, levels = c(20, 10, 2, 1)) + (1 | g)",
          "y ~ relevel(b, ref = \"y\") * x + (1 | g)", "y ~ relevel(b, ref = 3) + (1 | g)",
          "y ~ interaction(a, b) + (1 | g)", "y ~ x:interaction(a, c, sep = \"_\") + (1 | g)",
          # natural splines: knots at quantiles of the fit's data, kept for new data
          "y ~ ns(x, 3) + (1 | g)", "y ~ ns(z, df = 2) * a + (1 | g)",
          "y ~ ns(x, knots = c(-1, 0, 1)) + (1 | g)",
          # a matrix-valued variable (poly, scale: R's "nmatrix") in lmerTest's containment
          "y ~ poly(z, 2) * a + (1 | g)", "y ~ scale(x) * b + (1 | g)")
fitted <- lapply(fits, function(f) {
  m <- suppressMessages(suppressWarnings(lmerTest::lmer(as.formula(f), d)))
  tests <- function(type) {
    a <- anova(m, type = type)
    lapply(rownames(a), function(r) list(term = r, F = a[r, "F value"], numdf = a[r, "NumDF"],
                                         dendf = a[r, "DenDF"]))
  }
  newdata <- d[c(1, 50, 100, 150, 200), ]
  newdata$g <- factor(c("g01", "g05", "new", "g12", "g24"), levels = c(levels(d$g), "new"))
  list(formula = f, criterion = REMLcrit(m), fixef = as.list(fixef(m)),
       se = as.list(sqrt(diag(as.matrix(vcov(m))))), ranef_columns = colnames(ranef(m)$g),
       anova = list("1" = tests(1), "2" = tests(2), "3" = tests(3)),
       # null where R cannot predict: a factor made in the formula from the new rows alone
       # (as.character(t) of 5 rows) has other levels than the fit's
       predict = tryCatch(unname(predict(m, newdata = newdata, allow.new.levels = TRUE)),
                          error = function(e) NA))
})
# random-effects terms: their columns' names, and lmerTest's ranova rows
# and the names of nested grouping factors (b:(h:g) for g/h/b)
random <- lapply(c("y ~ 1 + (0 + c + x:c | g)", "y ~ 1 + (x + a:x || g)",
                   "y ~ x + (1 | g/a/c)", "y ~ x + (1 | g/a:c)"), function(f) {
  m <- suppressMessages(suppressWarnings(lmerTest::lmer(as.formula(f), d)))
  r <- ranova(m)
  list(formula = f, criterion = REMLcrit(m), ranef_columns = colnames(ranef(m)$g),
       groups = names(ranef(m)),
       ranova = lapply(rownames(r)[-1], function(x) list(term = x, LRT = r[x, "LRT"],
                                                        Df = r[x, "Df"])))
})
# ns()'s basis beyond the boundary knots: each column the line of its value and slope there
ns_basis <- list(x = c(-5, -0.3, 0, 0.7, 5), df = 3,
                 basis = unname(predict(ns(d$x, 3), c(-5, -0.3, 0, 0.7, 5))[, ]))
writeLines(toJSON(list(model_matrix = model_matrix, fits = fitted, random = random,
                       ns_basis = ns_basis),
                  auto_unbox = TRUE,
                  digits = NA, pretty = TRUE, na = "null"), out_file)
