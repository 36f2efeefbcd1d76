"""The grid: a run's plan, its models, its cells as jobs, and the executors that run them."""
