#!/usr/bin/env python
"""Speed benchmark of the samplers (same as ``lm-eval-infogain bench``); see lm_eval_infogain/bench.py."""

import sys

from lm_eval_infogain.bench import main

if __name__ == "__main__":
    sys.exit(main())
