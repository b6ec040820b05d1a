"""Functions of a fitted state: t and F tests (Satterthwaite, Kenward-Roger), likelihood-ratio
tests, ranova, profile, bootstrap, simulation."""
