"""A scorer for the fault tests that also stores per-example arrays (as the diffusion scorer does)."""

import numpy as np

from winoground_eval.baselines.dummy import DummyScorer
from winoground_eval.core.contracts import Scored


class WithArrays(DummyScorer):
    def evaluate(self, examples):
        out = []
        for ex in examples:
            s = np.asarray(self.score(ex.images, ex.captions), dtype=np.float64)
            out.append(Scored(s, arrays={"errors": s.ravel()}, info={"unet_calls": 4}))
        return out
