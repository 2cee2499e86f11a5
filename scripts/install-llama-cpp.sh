#!/usr/bin/env bash
# Installs the llama.cpp the tests run our GGUF exports in: the npm package
# node-llama-cpp, pinned at exactly 3.21.1, with its prebuilt CPU binaries
# (@node-llama-cpp/linux-x64, also from npm). Nothing else is downloaded or built:
# NODE_LLAMA_CPP_SKIP_DOWNLOAD stops its post-install step from fetching or compiling
# llama.cpp, and --omit=optional skips the CUDA/Vulkan builds (83 MB instead of 730).
#   scripts/install-llama-cpp.sh DIR   -> DIR/node_modules/node-llama-cpp
# Idempotent: exits at once when that version is present. Needs Node.js >= 20.
set -euo pipefail
DIR=${1:?usage: install-llama-cpp.sh DIR}
VERSION=3.21.1

installed() {
  [ -f "$DIR/node_modules/node-llama-cpp/package.json" ] &&
    [ -f "$DIR/node_modules/@node-llama-cpp/linux-x64/package.json" ] &&
    grep -q "\"version\": \"$VERSION\"" "$DIR/node_modules/node-llama-cpp/package.json"
}
installed && exit 0

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "install-llama-cpp: installing nodejs and npm" >&2
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends nodejs npm
fi
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 20 ]; then
  echo "install-llama-cpp: node-llama-cpp $VERSION needs Node.js >= 20, found $(node --version)" >&2
  exit 1
fi

mkdir -p "$DIR"
[ -f "$DIR/package.json" ] || echo '{"private": true, "description": "llama.cpp for moe tests"}' > "$DIR/package.json"
echo "install-llama-cpp: npm install node-llama-cpp@$VERSION (CPU build) into $DIR" >&2
(cd "$DIR" && NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm install --no-audit --no-fund --save-exact --omit=optional \
  "node-llama-cpp@$VERSION" "@node-llama-cpp/linux-x64@$VERSION" >&2)
installed || { echo "install-llama-cpp: node-llama-cpp $VERSION is not in $DIR/node_modules after npm install" >&2; exit 1; }
