#!/usr/bin/env bash
# Builds the static Linux binary that releases ship (x86_64-unknown-linux-musl, the
# `dist` profile) and checks it: statically linked, at most 14 MiB, names its commit.
# Needs: rustup target add x86_64-unknown-linux-musl; apt-get install musl-tools
# (musl-gcc compiles the C parts: mimalloc, the TLS crypto). Prints the binary's path.
set -euo pipefail
cd "$(dirname "$0")/.."
target=x86_64-unknown-linux-musl
# 14 MiB: 10 MiB until the PostgreSQL record (issue 24), whose client (tokio-postgres, its
# protocol and types, SASLprep's Unicode tables) adds 1.03 MiB (the binary was at 10.26 MiB
# before it); 12 MiB until the S3 record (issue 25), whose client (object_store's S3 with its
# credential chain, and the HTTP/2, XML and CRC code it always brings) adds 2.64 MiB (11.28 MiB
# before it). See "The shipped binary and the install" in the README.
limit=$((14 * 1024 * 1024))

rustup target list --installed | grep -qx "$target" || {
  echo "error: the $target target is missing: rustup target add $target" >&2
  exit 1
}
command -v musl-gcc >/dev/null || {
  echo "error: musl-gcc is missing: apt-get install musl-tools" >&2
  exit 1
}

cargo build --locked --profile dist --target "$target" --bin grattr >&2
binary="target/$target/dist/grattr"

if ldd "$binary" >/dev/null 2>&1 && ! ldd "$binary" 2>&1 | grep -q "statically linked"; then
  echo "error: $binary is dynamically linked:" >&2
  ldd "$binary" >&2
  exit 1
fi
size=$(stat -c %s "$binary")
if (( size > limit )); then
  echo "error: $binary is $size bytes, over the 14 MiB budget" >&2
  exit 1
fi
echo "$("$binary" --version): static, $size bytes" >&2
echo "$binary"
