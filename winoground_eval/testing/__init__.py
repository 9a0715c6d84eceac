"""Test, benchmark and training scaffolding: NOT part of the evaluation suite's API.

Nothing here is needed to run an evaluation. These modules build small stand-ins offline
(random weights, drawn images) so that the tests, ``benchmarks/`` and ``training/`` can go
through the real loading code without any download:

- :mod:`.tiny_sd`: a tiny random Stable-Diffusion folder (``write_tiny_sd``), its parts
  (``tiny_components``), a tiny learned-sigma DiT (``write_tiny_dit``) and the CLIP BPE
  tokenizer and text encoder that ``training/train_tiny_diffusion.py`` also uses.
- :mod:`.tiny_families`: tiny random SDXL, SD3 and FLUX.1 folders, and a LoRA file for them.
- :mod:`.winoground_sample`: a synthetic sample in Winoground's file layout (not Winoground).
- :mod:`.classification_fixtures`: tiny stand-ins of the classification datasets in their
  on-disk layouts; ``tasks/classification.py``'s ``offline_fixture`` hook (the contract
  tests' way to build the task offline) reads them.

They ship in the wheel because shipped code (a task's ``offline_fixture`` hook, the
benchmarks, the training scripts) imports them; the test suite's own helpers (built once per
session) are in ``tests/conftest.py``. Keep them out of the core: no core module imports
``winoground_eval.testing``.
"""
