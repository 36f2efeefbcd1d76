"""The regression check (`rb check`): rerun a baseline's cells and compare them sample by sample."""
