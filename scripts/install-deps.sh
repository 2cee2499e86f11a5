#!/usr/bin/env bash
# Installs every system dependency of moe with apt-get. Idempotent: exits at once
# when everything is present. Needs root (or sudo) only when something is missing.
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config
  libdnnl-dev            # oneDNN 2.6: GEMM fp32 / bf16
  ocl-icd-opencl-dev     # (only a "recommends" of libdnnl-dev, but its CMake config needs OpenCL)
  nlohmann-json3-dev     # JSON (safetensors headers, configs)
  libcli11-dev           # command line
  libgtest-dev           # tests
  libbenchmark-dev       # bench/
  python3-torch python3-numpy   # the PyTorch oracle, run as /usr/bin/python3
  openmpi-bin libopenmpi-dev   # MPI: data parallelism across processes and machines (mpirun)
  libsentencepiece-dev   # tokenizer: BPE training and encoding (moe data, moe generate)
  clang libclang-rt-14-dev libomp-dev   # fuzz targets (tests/fuzz): clang++, libFuzzer + sanitizers, OpenMP
  bible-kjv              # default corpus: the King James Bible (`bible`)
  r-cran-janeaustenr     # default corpus: Jane Austen's six novels (read with Rscript, from r-base-core)
  r-cran-tokenizers python3.11-doc perl-doc wordnet-base   # moe data --corpus large: Moby Dick, Python's and
                                                           # Perl's manuals, WordNet's glosses (11M tokens in all)
  python3-matplotlib python3-pil fonts-dejavu-core   # moe report: the figures of the HTML page
  chromium python3-websocket   # the report's test opens the page in a headless browser (DevTools protocol)
)

# Programs the build and `moe data` run, checked after installing.
check_programs() {
  local p
  for p in /usr/bin/bible /usr/bin/Rscript; do
    if [ ! -x "$p" ]; then
      echo "install-deps: $p is missing after installing the packages" >&2
      exit 1
    fi
  done
}

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  check_programs
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
check_programs
