"""The protocol: what plugins are (contracts, registry), what an attack may touch (the oracle),
the threat models and their geometry, and the evaluation of one cell (attack through the
oracle, project, verify, per-sample arrays), with the checks no cell shows. Plugins import the
part of it that is theirs through `robustbench_lite.api`; the engine (the oracle's counter, the
cell evaluation) is not exported to them."""
