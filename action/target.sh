#!/usr/bin/env bash
# Decides which release archive fits this runner, and where the binary goes, so that the
# cache step (keyed on version and target) can run before the install step.
#
# In: GRATTR_VERSION; RUNNER_OS, RUNNER_ARCH (GitHub sets them; uname otherwise); RUNNER_TEMP.
# Out (GITHUB_OUTPUT): target, dir.
set -euo pipefail
# shellcheck source=common.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

version=${GRATTR_VERSION:?GRATTR_VERSION is not set}
if [[ ! "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]]; then
  error "version must be a release number such as 1.2.3 (without the v)"
  exit 1
fi

os=${RUNNER_OS:-$(uname -s)}
arch=${RUNNER_ARCH:-$(uname -m)}
case "$os" in
  Linux) os=linux ;;
  macOS | Darwin) os=macos ;;
  Windows | MINGW* | MSYS* | CYGWIN*) os=windows ;;
  *) error "no grattr release for the operating system $os"; exit 1 ;;
esac
case "$arch" in
  X64 | x86_64 | amd64) arch=x86_64 ;;
  ARM64 | aarch64 | arm64) arch=aarch64 ;;
  *) error "no grattr release for the architecture $arch"; exit 1 ;;
esac
case "$os/$arch" in
  linux/*) target=$arch-unknown-linux-musl ;;
  macos/*) target=$arch-apple-darwin ;;
  windows/x86_64) target=x86_64-pc-windows-msvc ;;
  *) error "no grattr release for $os on $arch"; exit 1 ;;
esac

dir="${RUNNER_TEMP:-${TMPDIR:-/tmp}}/grattr/$version/$target"
set_output target "$target"
set_output dir "$dir"
echo "grattr $version for $target, in $dir"
