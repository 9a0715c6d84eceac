"""winoground-eval: compositional vision-language evaluation with diffusion models as zero-shot scorers."""

__version__ = "0.1.0"
