"""Training scripts for the shipped tiny models (``make train-tiny``); not part of the installed package."""
