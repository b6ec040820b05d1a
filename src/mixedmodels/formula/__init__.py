"""lme4 formula text -> terms: response, fixed part, random-effects bars, offsets."""
