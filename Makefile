PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
RB ?= rb
QUICK_BASELINE := results/mnist-5k/quick/leaderboard.csv
STANDARD := results/mnist-5k/standard
# The official MNIST test split beside the checkout, where there is one: `rb` finds data sets only
# in $RB_DATA_DIR (or downloads them), never in a folder of its own choosing (docs/datasets.md).
ifneq ($(wildcard ../shared/data/mnist),)
export RB_DATA_DIR ?= $(abspath ../shared/data)
endif

.PHONY: install test checks checks-a checks-b lint pytest regress regress-lane regress-rest regress-minimal regress-bpda regress-cheap regress-cheap-a regress-cheap-b regress-eot regress-none regress-standard regress-retrain regress-full bench bench-smoke leaderboard leaderboard-plan quick-baseline sweep site gpu zoo docs

# torch first, pinned: its CPU wheel lies on the machine; an unpinned torch pulls GBs of CUDA.
install:
	$(PIP) install torch==2.13.0
	$(PIP) install -e '.[dev,ray]'

# pytest on both cores, then the single-process checks (lint, the regression gate, bench-smoke,
# docs) in two lanes, one per core, of about the same length (2026-12-07, seconds, alone unless
# noted: lint 34, regress-cheap-a 56 (beside one other job), regress-minimal 90, regress-eot about
# 42 (126 less the 84 of the cells it dropped), docs 6 | regress-cheap-b 45, regress-standard 18,
# regress-bpda 28, regress-none 101, regress-retrain 26, bench-smoke 55).
test: pytest checks

checks:
	$(MAKE) --no-print-directory -j2 checks-a checks-b

checks-a:
	$(MAKE) --no-print-directory lint regress-lane docs

checks-b:
	$(MAKE) --no-print-directory regress-rest bench-smoke

# ruff, the types (mypy; [tool.mypy] in pyproject.toml), then the one-way layers (import-linter's
# contracts there).
lint:
	$(PYTHON) -m ruff check robustbench_lite tests examples benchmarks
	$(PYTHON) -m ruff format --check robustbench_lite tests examples benchmarks
	$(PYTHON) -m mypy robustbench_lite
	lint-imports

pytest:
	$(PYTHON) -m pytest -q -n 2 --durations=15 -m "not bench"

# The regression gate, on the zoo's weights (an attack regression shows exactly): every gradient,
# spatial and transfer cell of the committed quick grid on the seeded defenses, `none`'s query
# cells, the white-box minimal attacks on the trained rows, the input-transformation rows' pgd and
# apgd pairs (through BPDA and plain), the quick `none` retrained (a training regression shows
# statistically) and `spatial` and `spatial-random` of the standard grid on `ibp` and `none`;
# `make regress-full` reruns every quick cell.
CHEAP := pgd,pgd-l2,pgd-margin,apgd,apgd-l2,apgd-t,apgd-t-l2,spatial,spatial-random,transfer,transfer-l2
# The gate alone, in two lanes (`make test` runs it in its `checks` lanes).
regress:
	$(MAKE) --no-print-directory -j2 regress-lane regress-rest

regress-lane:
	$(MAKE) --no-print-directory regress-cheap-a regress-minimal regress-eot

regress-rest:
	$(MAKE) --no-print-directory regress-cheap-b regress-standard regress-bpda regress-none \
		regress-retrain

regress-cheap-a:
	$(RB) --quiet check --baseline $(QUICK_BASELINE) -a $(CHEAP) -d none,abs,abs-binary

# randomization through EOT: every cheap cell but apgd-t, apgd-t-l2 and pgd-margin (their EOT
# cells took 84 of its 126 s; those attacks are gated on every other row, the EOT path here,
# and regress-full reruns them).
EOT_CHEAP := pgd,pgd-l2,apgd,apgd-l2,spatial,spatial-random,transfer,transfer-l2
regress-eot:
	$(RB) --quiet check --baseline $(QUICK_BASELINE) -a $(EOT_CHEAP) -d randomization

regress-cheap-b:
	$(RB) --quiet check --baseline $(QUICK_BASELINE) -a $(CHEAP) -d ibp,alp,pgd-at

# FAB and FMN (minimal: their distances and curves) on the rows with trained models, 74 s.
regress-minimal:
	$(RB) --quiet check --baseline $(QUICK_BASELINE) -a fab,fmn,fab-l2,fmn-l2 -d none,ibp,alp,pgd-at

# The input-transformation rows (bit-depth, thermometer) double every white-box cell (through BPDA
# and plain): `make regress-bpda` reruns their pgd and apgd pairs, spatial and transfer (each cell
# alone: a @no-bpda cell without its twin), regress-full reruns all.
SEEDED := none,randomization,ibp,alp,pgd-at,abs,abs-binary
regress-cheap:
	$(RB) --quiet check --baseline $(QUICK_BASELINE) -a $(CHEAP) -d $(SEEDED)

regress-bpda:
	$(RB) --quiet check --baseline $(QUICK_BASELINE) -a pgd,apgd,spatial,transfer -d bit-depth,thermometer

# none's cheap cells are in regress-cheap: here its query-based cells.
QUERY := nes,lf-nes,boundary,lf-boundary,square,square-l2
regress-none:
	$(RB) --quiet check --baseline $(QUICK_BASELINE) -a $(QUERY) -d none

regress-standard:
	$(RB) --quiet check --baseline $(STANDARD)/leaderboard.csv -a spatial,spatial-random -d ibp,none

regress-retrain:
	$(RB) --quiet check --baseline $(QUICK_BASELINE) --retrain -d none -a $(CHEAP)

regress-full:
	$(RB) --quiet check --baseline $(QUICK_BASELINE)

# Rebuild the model zoo from the model cache after a deliberate retraining (then regenerate the
# committed grids on it: quick-baseline and leaderboard).
zoo:
	$(RB) --quiet zoo --profile quick --profile standard

# Every benchmark end to end on the standard models; run it alone on the machine. The independent
# implementations bench_independent compares with (torchattacks, adv-lib) are installed without
# their dependencies (neither needs torchvision); they are not CI dependencies.
bench:
	$(PYTHON) -m pip install --quiet --no-deps torchattacks==3.5.1 adv-lib==0.2.8
	$(PYTHON) -m pytest -q -n 2 -m bench
	$(PYTHON) -m benchmarks

# Every benchmark at a tiny size on the quick models (seconds): one that no longer runs fails CI.
bench-smoke:
	BENCH_SMOKE=1 $(PYTHON) -m benchmarks > /dev/null

# The documentation site (docs/, mkdocs.yml; seconds): a broken link, anchor or docstring reference
# fails it. Browse with `mkdocs serve`. NO_MKDOCS_2_WARNING silences Material's release banner.
docs:
	NO_MKDOCS_2_WARNING=1 $(PYTHON) -m mkdocs build --strict --site-dir build/docs

# The committed quick grid that `regress` compares against (rewrite after a deliberate change).
quick-baseline:
	$(RB) --quiet run --attack all --defense all --profile quick

# README's eps-sweep plot (a results root of its own, so CI's baseline stays the default eps).
sweep:
	$(RB) --quiet run --attack pgd,pgd-l2,pgd-margin --defense all --profile quick \
		--results results/sweep --eps linf:0.05,0.1,0.2,0.3 --eps l2:0.5,1.0,1.5,2.0
	$(RB) --quiet plot --results results/sweep --profile quick

# The standard grid (hours on two CPU cores; resumable cell by cell), its plots and README's table.
# Its cells run as Ray tasks, one per core (`make install` installs ray; GRID_EXECUTOR=local: one).
GRID_EXECUTOR ?= ray
# AutoAttack's chains are not in `all` (each member is a cell of its own there): the grid runs them
# by name on the rows that hold them, so a change to a member's default recomputes them here too.
CHAIN_ROWS := none,ibp,alp,pgd-at
# $(call standard_grid,FLAGS): every selection of the standard grid, each run with FLAGS.
define standard_grid
	$(RB) --quiet run --attack all --defense all --profile standard $(1)
	$(RB) --quiet run --attack autoattack,autoattack-l2 --defense $(CHAIN_ROWS) --profile standard $(1)
	$(RB) --quiet run --attack autoattack-rand --defense randomization --profile standard $(1)
endef
# What `make leaderboard` would compute, each cell with why (new, or made under another config):
# seconds, nothing trained or attacked.
leaderboard-plan:
	$(call standard_grid,--dry-run)

leaderboard:
	$(call standard_grid,--executor $(GRID_EXECUTOR))
	$(RB) --quiet plot --results results --profile standard
	$(RB) leaderboard --results results --profile standard --readme README.md > /dev/null

# The static leaderboard website of every grid under results/ (open site/index.html; no server).
site:
	$(RB) --quiet site --results results --out site

# On a machine with CUDA (minutes of GPU time): the plugin contracts on the GPU, the quick grid
# rerun there and compared sample by sample with the committed CPU baseline, then the ABS cells of
# the standard grid that are too slow for a CPU (tens of CPU-hours: every ABS query reruns its
# latent search), white-box first (what both ABS rows lack to be whole), then the query-based
# ones; each resumable unit by unit, so a cut-off run keeps what it finished (`rb leaderboard
# --write` after copying them back). The protocol is the CPU's: same configs, same cells.
ABS_WHITE_BOX := pgd-l2,apgd-l2,apgd-t-l2,pgd,pgd-margin,apgd,apgd-t
ABS_QUERY_ATTACKS := square,square-l2,boundary,lf-boundary,nes,lf-nes
gpu:
	RB_DEVICE=cuda $(PYTHON) -m pytest -q tests/attacks/test_contract.py \
		tests/defenses/test_contract.py tests/protocol/test_integrity.py \
		tests/protocol/test_guarantees.py
	RB_DEVICE=cuda $(RB) --quiet check --baseline $(QUICK_BASELINE)
	RB_DEVICE=cuda $(RB) --quiet run -a $(ABS_WHITE_BOX) -d abs,abs-binary --profile standard \
		--threads 4
	RB_DEVICE=cuda $(RB) --quiet run -a $(ABS_QUERY_ATTACKS) -d abs,abs-binary --profile standard \
		--threads 4
