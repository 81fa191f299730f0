"""The epoxy-beam jobs: options, preflight, pipeline assembly, summary and outputs."""

import sys

from pipelines.console import quiet_libraries, verbose_requested

# TensorFlow's C++ start-up chatter (CPU features, CUDA probing, oneDNN) and Beam's optional
# GCP notices drown the job's own output; ``--verbose`` brings them back.
if not verbose_requested(sys.argv[1:]):
    quiet_libraries()
