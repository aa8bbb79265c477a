"""talkbench: evaluation and uncertainty analysis for audio-driven talking-face generation."""
import os

# Same seed, same model: on CPU, MKL picks its GEMM kernels by the memory alignment of the operands
# (which shifts with allocator history, e.g. after a checkpoint is saved) and by thread count, so
# two runs with one seed could end a few ulps apart and then drift. Strict conditional numerical
# reproducibility makes MKL's results bit-identical from run to run. It must be set before MKL's
# first call, hence here; a user's own MKL_CBWR wins. (No effect on CUDA.)
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

__version__ = "0.1.0"
