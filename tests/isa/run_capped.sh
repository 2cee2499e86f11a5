#!/usr/bin/env bash
# Runs a test command on the AVX2 tier: ONEDNN_MAX_CPU_ISA=AVX2 caps oneDNN's kernels and
# moe's own ISA choice (src/tensor/cpu.h): bf16 GEMMs widened to f32, AVX2 conversions and
# peak loop. On a CPU without AVX-512 the plain run of the same tests already was this tier:
# exit 77 (ctest: skipped) unless MOE_ISA_RERUN=1.
#   tests/isa/run_capped.sh COMMAND [ARGS...]
set -euo pipefail
if ! grep -qw avx512f /proc/cpuinfo && [ "${MOE_ISA_RERUN:-0}" != 1 ]; then
  echo "run_capped: this CPU has no AVX-512; the unlabelled run of these tests was the AVX2 tier"
  exit 77
fi
export ONEDNN_MAX_CPU_ISA=AVX2
exec "$@"
