"""Benchmarks (`make bench`): our attacks side by side with a peer, as ratios, in one run."""
