"""Reports built from the result files alone: the leaderboard and its tables, red flags and `rb diagnose`, the soundness invariants, plots, and the static site."""
