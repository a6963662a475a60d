#!/usr/bin/env bash
# Installs a grattr release archive made by cargo-dist: downloads it and its .sha256, refuses it
# unless the SHA-256 matches, extracts the binary into GRATTR_DIR and puts that on the PATH.
# A binary already in GRATTR_DIR (restored by actions/cache, keyed on version and target) is
# used as is: it was verified when it was first installed.
#
# In: GRATTR_VERSION, GRATTR_TARGET, GRATTR_DIR (from target.sh); GRATTR_RELEASE_BASE_URL
# (default: GitHub releases of OWNER/grattr); GITHUB_PATH.
set -euo pipefail
# shellcheck source=common.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

version=${GRATTR_VERSION:?GRATTR_VERSION is not set}
target=${GRATTR_TARGET:?GRATTR_TARGET is not set}
dir=${GRATTR_DIR:?GRATTR_DIR is not set}
base=${GRATTR_RELEASE_BASE_URL:-https://github.com/OWNER/grattr/releases/download}

exe=grattr
archive=grattr-$target.tar.xz
if [[ "$target" == *-windows-* ]]; then
  exe=grattr.exe
  archive=grattr-$target.zip
fi

sha256_of() {
  if command -v sha256sum >/dev/null; then
    sha256sum -- "$1" | cut -d' ' -f1
  else
    shasum -a 256 -- "$1" | cut -d' ' -f1
  fi
}

install_archive() {
  local expected_line expected named actual found
  work=$(scratch_dir)
  # Whatever happens below, nothing half-downloaded stays behind.
  trap 'rm -rf -- "$work"' EXIT
  local url="$base/v$version/$archive"
  echo "Downloading $url"
  # --proto-redir: GitHub redirects release downloads; never follow a redirect off HTTPS.
  curl --fail --silent --show-error --location --proto-redir '=https' --retry 3 \
    --output "$work/$archive" -- "$url"
  curl --fail --silent --show-error --location --proto-redir '=https' --retry 3 \
    --output "$work/$archive.sha256" -- "$url.sha256"

  # cargo-dist writes "<hex>  <name>" (text mode) or "<hex> *<name>" (binary mode).
  expected_line=$(head -n 1 -- "$work/$archive.sha256" | tr -d '\r')
  expected=${expected_line%% *}
  expected=$(printf '%s' "$expected" | tr '[:upper:]' '[:lower:]')
  if [[ ! "$expected" =~ ^[0-9a-f]{64}$ ]]; then
    error "$archive.sha256 does not hold a SHA-256; nothing was installed"
    return 1
  fi
  named=${expected_line#* }
  named=${named# }
  named=${named#\*}
  if [[ -n "$named" && "$named" != "$expected_line" && "$named" != "$archive" ]]; then
    error "$archive.sha256 names another file; nothing was installed"
    return 1
  fi
  actual=$(sha256_of "$work/$archive")
  if [[ "$actual" != "$expected" ]]; then
    error "checksum mismatch for $archive: expected $expected, got $actual; refusing to install it (nothing was installed)"
    return 1
  fi
  echo "SHA-256 verified: $actual"

  mkdir -p -- "$work/x"
  if [[ "$archive" == *.zip ]]; then
    if command -v unzip >/dev/null; then
      unzip -q -- "$work/$archive" -d "$work/x"
    elif command -v 7z >/dev/null; then
      7z x -bd -y "-o$work/x" -- "$work/$archive" >/dev/null
    else
      error "neither unzip nor 7z is installed to extract $archive; nothing was installed"
      return 1
    fi
  else
    tar -xJf "$work/$archive" -C "$work/x"
  fi
  # cargo-dist puts the binary in grattr-<target>/ or at the top; take the one named grattr.
  found=$(find "$work/x" -type f -name "$exe" | head -n 1)
  if [[ -z "$found" ]]; then
    error "$archive holds no $exe; nothing was installed"
    return 1
  fi
  chmod +x -- "$found"
  mkdir -p -- "$dir"
  # Move into place last, so an interrupted install leaves no binary that looks installed.
  mv -f -- "$found" "$dir/$exe.partial"
  mv -f -- "$dir/$exe.partial" "$dir/$exe"
}

if [[ -x "$dir/$exe" ]]; then
  echo "Using grattr $version from the cache"
else
  install_archive
fi

if [[ -n "${GITHUB_PATH:-}" ]]; then
  printf '%s\n' "$dir" >>"$GITHUB_PATH"
fi
"$dir/$exe" --version
