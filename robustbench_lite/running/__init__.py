"""Running a grid: the plan (a frozen value), the runner, its jobs and executors (local, Ray), a user's own model, and `rb check`."""
