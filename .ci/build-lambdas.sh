#!/usr/bin/env bash
# Builds the three functions for Lambda (arm64, provided.al2023) with cargo-lambda and prints
# their sizes. cargo-lambda comes from PyPI and brings zig. If the arm64 target cannot be
# installed on this machine, says so and builds x86_64 instead (the same code).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo lambda --version >/dev/null 2>&1; then
  python3 -m pip install -q cargo-lambda
  hash -r
fi

arch=arm64
target=aarch64-unknown-linux-gnu
if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
  if ! rustup target add "$target" >/dev/null 2>&1; then
    echo "build-lambdas: the $target target cannot be installed here; building x86_64 instead"
    arch=x86_64
  fi
fi

if [ "$arch" = arm64 ]; then
  cargo lambda build --release --arm64 -p webhook -p responder -p admin
else
  cargo lambda build --release --x86-64 -p webhook -p responder -p admin
fi

for f in webhook responder admin; do
  bin=target/lambda/$f/bootstrap
  [ -f "$bin" ] || { echo "build-lambdas: $bin is missing"; exit 1; }
  printf 'build-lambdas: %-9s %s %8d bytes (%s)\n' "$f" "$arch" "$(stat -c %s "$bin")" "$(file -b "$bin" | cut -d, -f1-2)"
done
