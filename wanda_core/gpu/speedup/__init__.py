"""2:4 speed-up on NVIDIA sparse tensor cores: timed LLaMA linear layers and a LLaMA-shaped decoder stack.

The paper's practical claim (arXiv 2306.11695) is that 2:4 masks are not only smaller but faster:
about 1.6x on LLaMA's linear layers and 1.24x end-to-end latency, on an RTX A6000. This package
measures the same thing with PyTorch's semi-structured sparse tensors (`to_sparse_semi_structured`,
backends cuSPARSELt and CUTLASS) against the dense matmul with the *same* masked weight.

  device.py    is there a GPU, which sparse backends run on it, the provenance of GPU records
  sparse24.py  LLaMA 7B..65B layer shapes, random 2:4 weights, compression, the numerical check
  stack.py     a LLaMA-shaped decoder stack (prefill and decode) whose weights switch dense / 2:4
  timing.py    timing one configuration (CUDA events, eager or CUDA graph)
  suite.py     everything, as run records in results/speedup/ (`python -m wanda_core.gpu.speedup`)
  read.py      reading those records (chapter 10 reads them through wanda_core.study.experiments.speedup)

    python -m wanda_core.gpu.speedup --out results/speedup     # on a GPU; --quick, --rehearse (CPU)
"""
from wanda_core.gpu.speedup.device import SpeedupUnavailable, available_backends, gpu_available, gpu_provenance, unavailable_backends
from wanda_core.gpu.speedup.read import RECORD_KIND, RESULT_COLUMNS, load_provenance, load_records, load_results, speedup_table
from wanda_core.gpu.speedup.sparse24 import (BACKENDS, LAYER_GROUPS, LAYER_TYPES, LLAMA_DIMS, LLAMA_SHAPES, SparseMismatch,
                       check_sparse_matches_dense, make_24_weight, to_sparse)
from wanda_core.gpu.speedup.stack import DecoderStack, build_stack
from wanda_core.gpu.speedup.suite import run_all
from wanda_core.gpu.speedup.timing import PREFILL_TOKENS, time_decoder_stack, time_linear

__all__ = ["SpeedupUnavailable", "available_backends", "gpu_available", "gpu_provenance", "unavailable_backends",
           "RECORD_KIND", "RESULT_COLUMNS", "load_provenance", "load_records", "load_results", "speedup_table",
           "BACKENDS", "LAYER_GROUPS", "LAYER_TYPES", "LLAMA_DIMS", "LLAMA_SHAPES", "SparseMismatch",
           "check_sparse_matches_dense", "make_24_weight", "to_sparse", "DecoderStack", "build_stack", "run_all",
           "PREFILL_TOKENS", "time_decoder_stack", "time_linear"]
