"""The shipped tiny trained models (data only): one folder per model, read by winoground_eval.baselines.tiny_models."""
