#!/usr/bin/env bash
# Proves that the Windows build works: checks every target (tests included) for
# x86_64-pc-windows-gnu with clippy, cross-builds the release grattr.exe and runs it under
# wine on a copy of this repository's own groups/ and grattr.yaml. `--version`, `validate`,
# `plan` and `plan --format json` must give what the Linux build gives (exit code, stdout
# and stderr; paths aside: `\` is read as `/`), and `apply --emulator` must apply every
# group. Called by .ci/run; installs what is missing (the Rust target, Debian's
# gcc-mingw-w64-x86-64 and wine64) as root or with password-less sudo.
#
# GRATTR_WINDOWS_CHECK=build-only stops after the cross-build (for a machine without wine).
set -euo pipefail
cd "$(dirname "$0")/.."

target=x86_64-pc-windows-gnu
started=$SECONDS
say() { printf 'windows-check: %s\n' "$*" >&2; }

# --- what it needs -----------------------------------------------------------------
if ! rustup target list --installed | grep -qx "$target"; then
    say "adding the Rust target $target"
    rustup target add "$target"
fi

find_wine() {
    local candidate
    for candidate in wine64 wine /usr/lib/wine/wine64; do
        if command -v "$candidate" >/dev/null 2>&1; then
            command -v "$candidate"
            return 0
        fi
    done
    return 1
}

want_wine=true
[ "${GRATTR_WINDOWS_CHECK:-}" = build-only ] && want_wine=false
missing=()
command -v x86_64-w64-mingw32-gcc >/dev/null 2>&1 || missing+=(gcc-mingw-w64-x86-64)
if $want_wine && ! find_wine >/dev/null; then missing+=(wine64); fi
if [ "${#missing[@]}" -gt 0 ]; then
    # As root (this project's CI), or with password-less sudo (GitHub's runners).
    as_root=()
    [ "$(id -u)" -eq 0 ] || as_root=(sudo -n)
    if ! command -v apt-get >/dev/null 2>&1 || ! "${as_root[@]}" true 2>/dev/null; then
        say "missing ${missing[*]}: install them (Debian: apt-get install ${missing[*]})"
        exit 1
    fi
    say "installing ${missing[*]}"
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- the builds --------------------------------------------------------------------
target_dir=${CARGO_TARGET_DIR:-target}
# Every target (tests and benches too) compiles for Windows without a warning, so that the
# Windows job of ci.yml meets no surprise.
say "checking every target for $target"
cargo clippy --quiet --locked --target "$target" --all-targets -- -D warnings
say "cross-building the release grattr.exe"
cargo build --quiet --locked --release --target "$target" --bin grattr
exe="$target_dir/$target/release/grattr.exe"
[ -f "$exe" ] || { say "no $exe after the build"; exit 1; }
say "built $exe ($(du -k "$exe" | cut -f1) KiB) in $((SECONDS - started)) s"
if ! $want_wine; then
    exit 0
fi
# The Linux build to compare with: the debug build the tests already made.
cargo build --quiet --locked --bin grattr
linux=$(realpath "$target_dir/debug/grattr")

# --- a private wine prefix ---------------------------------------------------------
wine=$(find_wine)
wineserver=$(command -v wineserver || command -v wineserver64 || echo /usr/lib/wine/wineserver64)
work=$(mktemp -d "${TMPDIR:-/tmp}/grattr-windows-check.XXXXXX")
cleanup() {
    WINEPREFIX="$work/prefix" "$wineserver" -k >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
export WINEPREFIX="$work/prefix" WINEDEBUG=-all WINEARCH=win64
# No Mono or Gecko install prompts, no window: grattr is a console program.
export WINEDLLOVERRIDES="mscoree,mshtml=" DISPLAY=
unset WAYLAND_DISPLAY
boot=$SECONDS
# Bounded: a wine that waits for something (a display, a dialog) must fail the check, not hang it.
timeout 300 "$wine" wineboot --init >"$work/wineboot.log" 2>&1 || {
    say "wineboot failed:"
    cat "$work/wineboot.log" >&2
    exit 1
}
timeout 120 "$wineserver" -w
say "wine prefix ready in $((SECONDS - boot)) s ($("$wine" --version 2>/dev/null || echo wine))"

mkdir -p "$work/bin"
cp "$exe" "$work/bin/grattr.exe"
# Wine 8 has no bcryptprimitives.dll (ProcessPrng), which Rust's std needs: a shim
# beside the .exe stands in for it, only where the prefix lacks it.
if [ ! -e "$WINEPREFIX/drive_c/windows/system32/bcryptprimitives.dll" ]; then
    x86_64-w64-mingw32-gcc -shared -O2 -o "$work/bin/bcryptprimitives.dll" scripts/wine-processprng.c -ladvapi32
    say "wine lacks bcryptprimitives.dll: using the ProcessPrng shim"
fi

# --- the same commands, both builds ------------------------------------------------
fixture="$work/repo"
mkdir -p "$fixture"
cp -R grattr.yaml groups "$fixture/"
normalise() { tr -d '\r' | sed -e 's#\\\\#/#g' -e 's#\\#/#g'; }

run_both() {
    local name=$1
    shift
    local rc
    rc=0
    (cd "$fixture" && "$linux" "$@") >"$work/$name.linux.out" 2>"$work/$name.linux.err" || rc=$?
    echo "$rc" >"$work/$name.linux.rc"
    rc=0
    (cd "$fixture" && timeout 120 "$wine" "$work/bin/grattr.exe" "$@") >"$work/$name.wine.out" 2>"$work/$name.wine.err" || rc=$?
    echo "$rc" >"$work/$name.wine.rc"
}

failed=0
compare() {
    local name=$1 stream same=true
    shift
    run_both "$name" "$@"
    for stream in rc out err; do
        if ! diff -u <(normalise <"$work/$name.linux.$stream") <(normalise <"$work/$name.wine.$stream") >"$work/$name.$stream.diff"; then
            say "grattr $* differs on Windows ($stream, - Linux, + Windows):"
            cat "$work/$name.$stream.diff" >&2
            same=false
            failed=1
        fi
    done
    if $same; then
        say "grattr $*: exit $(cat "$work/$name.wine.rc"), $(wc -c <"$work/$name.wine.out") bytes out, same as Linux"
    fi
}

# --version names the build (a release build names its commit, a debug build does not):
# the name and the version must match.
run_both version --version
if [ "$(cut -d' ' -f1-2 <"$work/version.linux.out")" != "$(tr -d '\r' <"$work/version.wine.out" | cut -d' ' -f1-2)" ] ||
    [ "$(cat "$work/version.wine.rc")" != 0 ]; then
    say "grattr --version differs: Linux '$(cat "$work/version.linux.out")', Windows '$(cat "$work/version.wine.out")' $(cat "$work/version.wine.err")"
    failed=1
fi
say "grattr --version: $(tr -d '\r' <"$work/version.wine.out")"
compare validate validate
compare plan plan
compare plan-json plan --format json
compare plan-detailed plan --detailed-exitcode

# apply writes the record (journal, lockfile renamed over): what Windows refuses
# where Unix allows shows here.
run_both apply apply --emulator --yes
if [ "$(cat "$work/apply.wine.rc")" != 0 ] || [ "$(cat "$work/apply.linux.rc")" != 0 ]; then
    say "grattr apply --emulator: Linux exit $(cat "$work/apply.linux.rc"), Windows exit $(cat "$work/apply.wine.rc"):"
    normalise <"$work/apply.wine.err" >&2
    failed=1
else
    say "grattr apply --emulator: exit 0 on both"
fi

if [ "$failed" -ne 0 ]; then
    say "FAILED after $((SECONDS - started)) s"
    exit 1
fi
say "the Windows build gives the Linux build's results (took $((SECONDS - started)) s)"
