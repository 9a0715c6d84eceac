"""The results commands' implementations: show, export, compare, report, choose-timesteps,
calibrate, repair, metrics --save-run, and their helpers (loading runs, score files,
baseline comparison, timestep selection). They read finished runs; they import the core,
never the command line (tests/test_layering.py).
"""
