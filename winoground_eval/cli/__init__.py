"""The command line: argparse, the rich consoles, each command's command-line module, the demo.

Only this layer prints. ``wg-eval`` is :func:`winoground_eval.cli.main.main`.
"""
