"""The core: contracts, registry, metrics, runner and run store, errors and policy.

Tasks, scorers (baselines, diffusion) and commands build on it; it imports nothing from
``winoground_eval.results``, ``winoground_eval.cli`` or a plugin (tests/test_layering.py).
"""
