#!/usr/bin/env bash
# From a cold runner to a plan: times the GitHub Action's install step (action/target.sh and
# action/install.sh: download, SHA-256 check, extract) against a release server on loopback
# serving the shipped static binary packed as cargo-dist packs it, then `validate --format
# github` and `plan --format markdown` of this repository's example, as the plan job runs them.
# Each round starts from an empty runner directory (no cache).
#
#   scripts/build-static.sh && scripts/bench-install.sh [ROUNDS]
#
# Needs python3 (the release server), curl, tar and xz.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
binary=target/x86_64-unknown-linux-musl/dist/grattr
[[ -x "$binary" ]] || { echo "error: $binary is missing: run scripts/build-static.sh first" >&2; exit 1; }
repo=$PWD
target=x86_64-unknown-linux-musl
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)

work=$(mktemp -d)
server=
cleanup() {
  [[ -n "$server" ]] && kill "$server" 2>/dev/null
  rm -rf -- "$work"
}
trap cleanup EXIT

# The release, as cargo-dist lays it out.
mkdir -p "$work/release/v$version" "$work/pack/grattr-$target"
cp "$binary" README.md LICENSE-MIT LICENSE-APACHE "$work/pack/grattr-$target/"
tar -cJf "$work/release/v$version/grattr-$target.tar.xz" -C "$work/pack" "grattr-$target"
(cd "$work/release/v$version" && sha256sum "grattr-$target.tar.xz" >"grattr-$target.tar.xz.sha256")
archive_size=$(stat -c %s "$work/release/v$version/grattr-$target.tar.xz")

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -m http.server "$port" --bind 127.0.0.1 --directory "$work/release" >/dev/null 2>&1 &
server=$!
for _ in $(seq 100); do
  curl -fsS -o /dev/null "http://127.0.0.1:$port/" 2>/dev/null && break
  sleep 0.05
done

now() { date +%s.%N; }
elapsed() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$1" "$2"; }

echo "| round | install | validate + plan | total |"
echo "|---:|---:|---:|---:|"
for round in $(seq "$rounds"); do
  runner="$work/runner-$round"
  mkdir -p "$runner/repo"
  cp -r grattr.yaml groups "$runner/repo/"
  [[ -f grattr.lock ]] && cp grattr.lock "$runner/repo/"
  started=$(now)
  RUNNER_OS=Linux RUNNER_ARCH=X64 RUNNER_TEMP="$runner" GRATTR_VERSION="$version" \
    GITHUB_OUTPUT="$runner/output" bash "$repo/action/target.sh" >/dev/null
  dir=$(sed -n 's/^dir=//p' "$runner/output")
  GRATTR_VERSION="$version" GRATTR_TARGET="$target" GRATTR_DIR="$dir" \
    GRATTR_RELEASE_BASE_URL="http://127.0.0.1:$port" GITHUB_PATH="$runner/path" \
    bash "$repo/action/install.sh" >/dev/null
  installed=$(now)
  (
    cd "$runner/repo"
    "$dir/grattr" validate --format github >/dev/null 2>&1
    code=0
    "$dir/grattr" plan --format markdown --detailed-exitcode >plan.md || code=$?
    [[ $code == 0 || $code == 2 ]] || exit "$code"
  )
  planned=$(now)
  echo "| $round | $(elapsed "$started" "$installed") s | $(elapsed "$installed" "$planned") s | $(elapsed "$started" "$planned") s |"
done
echo
echo "Archive: grattr-$target.tar.xz, $archive_size bytes; $(nproc) cores."
