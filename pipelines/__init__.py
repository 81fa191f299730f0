"""The epoxy-beam jobs: options, preflight, pipeline assembly, summary and outputs."""

import os

# TensorFlow's C++ start-up chatter (CPU features, CUDA probing) drowns the job's own output;
# a user who wants it sets TF_CPP_MIN_LOG_LEVEL themselves.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
