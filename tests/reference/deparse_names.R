# R's names of model-matrix columns whose terms are expressions (R deparses them: spacing,
# numbers, parentheses), for tests/test_expressions.py. Data: lme4's sleepstudy with
# x = Days + 1 and dotted = Days + 2 (a column whose name has a dot, called Days.x).
# Run: Rscript tests/reference/deparse_names.R  (writes deparse_names.json beside it)
library(jsonlite)
d <- lme4::sleepstudy
d$x <- d$Days + 1
d$Days.x <- d$Days + 2
terms <- c("exp(-Days/5)", "I(1/(Days+1))", "I(Days*2.0)", "I(1e3*Days)", "I(100000*Days)",
           "I((Days+1)^-1)", "I(Days/2/3)", "I(-Days)", "I(Days - 2*x)", "log(x, 2)",
           "log(x, base = 10)", "I(x^0.5)", "I(0.5*x)", "I(1e-5*x)", "I(123456*x)", "I(2^-x)",
           "I(x>=3)", "I(x == 2)", "I((x>2) & (x<5))", "I(x^(1/3))", "sqrt(x/2)",
           "I(-(x+1))", "I(+x)", "I(3.25*x)", "I(1e10*x)", "I(0.0001*x)", "I(1234567.5*x)",
           "I(x-1e-4)", "I(x - (Days - 1))", "I(x*Days/3)", "I(x/(Days + 1))", "I(-x^2)",
           "I((-x)^2)", "I(2^x^0.5)", "I(x * (x > 2))", "log(Days.x)", "I(Days.x^2)",
           "poly(Days.x, 2)", "factor(Days.x)", "poly(x, 2, raw = TRUE)", "I(x^2):Days",
           "scale(x, scale = FALSE)", "I(2^70 * x)", "log(Days^2 + 1)", "sqrt(x^2)",
           "poly(x^2, 2)", "I(Days %% 3)", "I(Days %/% 3)", "I(!(x > 3))", "exp(-x^2/50)")
out <- lapply(terms, function(term) {
  mm <- model.matrix(as.formula(paste("Reaction ~", term)), d)
  list(term = term, columns = colnames(mm))
})
write_json(out, "deparse_names.json", auto_unbox = TRUE, pretty = TRUE, digits = NA)
