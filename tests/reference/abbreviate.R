# R's abbreviate() of coefficient names with spaces (the correlation table of summary() prints
# them so), for tests/test_display.py. Run: Rscript abbreviate.R (writes abbreviate.json).
library(jsonlite)
names <- c("(Intercept)", "poly(Days, 2)1", "poly(Days, 2)2", "log(age, 2):SexFemale",
           "SexMale:log(age, 2)", "I(Days^2)", "scale(x, scale = FALSE)", "a b c d e f",
           "relevel(g, ref = \"2\")1", "SexMale", "TypeT2", "age")
out <- lapply(c(6, 11), function(m) list(minlength = m, names = names,
                                         abbreviated = unname(abbreviate(names, m))))
write_json(out, "abbreviate.json", auto_unbox = TRUE, pretty = TRUE)
