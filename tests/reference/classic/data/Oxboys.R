# nlme's Oxboys as CSV (factors as plain strings), for benchmarks/bench_speed.py.
# Usage, from this folder: Rscript Oxboys.R
d <- as.data.frame(nlme::Oxboys)
for (v in names(d)) if (is.factor(d[[v]])) d[[v]] <- as.character(d[[v]])
write.csv(d, "Oxboys.csv", row.names = FALSE)
