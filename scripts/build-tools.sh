#!/usr/bin/env bash
# Installs the build tools the crates want beyond the Rust toolchain and a C compiler:
#   - nasm, for the SIMD code of the JPEG encoder (mozjpeg's libjpeg-turbo) on x86. Without it
#     everything still builds, with an encoder about 2x slower, so a machine without apt-get
#     (or without root) only gets a warning.
# Run before the first cargo build: the JPEG library's build script looks for nasm once.
set -euo pipefail
if [ "$(uname -m)" != "x86_64" ] || command -v nasm >/dev/null; then
  exit 0
fi
if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  echo "installing nasm (apt-get)" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nasm >/dev/null
else
  echo "warning: nasm is not installed; the JPEG encoder will build without SIMD (slower)" >&2
fi
