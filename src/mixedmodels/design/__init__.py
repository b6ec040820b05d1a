"""Formula terms and a DataFrame -> y, X and the random-effects terms' values and levels."""
