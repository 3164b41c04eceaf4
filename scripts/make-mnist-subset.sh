#!/usr/bin/env bash
# Writes the small MNIST subset committed for unit tests:
#   tests/Ebp.Datasets.Tests/TestData/mnist-subset/
# = the first N (default 200) train and first N t10k images and labels, as IDX files, with the
# header's count rewritten to N. Images are gzipped ('gzip -n', so the bytes do not depend on the
# time or the file name), labels are left uncompressed: the tests thus cover both reading paths.
#
#   scripts/fetch-mnist.sh && scripts/make-mnist-subset.sh [N]
#
# Reads the verified cache ${EBP_DATA_DIR:-$HOME/.cache/ebp}/mnist/ that fetch-mnist.sh fills.
set -euo pipefail

N="${1:-200}"
[[ "$N" =~ ^[0-9]+$ ]] && (( N > 0 && N <= 10000 )) || { echo "make-mnist-subset: N must be 1..10000" >&2; exit 1; }

SRC="${EBP_DATA_DIR:-${HOME:?HOME is not set}/.cache/ebp}/mnist"
OUT="$(cd "$(dirname "$0")/.." && pwd)/tests/Ebp.Datasets.Tests/TestData/mnist-subset"
mkdir -p "$OUT"

# A 32-bit big-endian integer as 4 raw bytes.
be32() { printf "\\x$(printf %02x $(($1 >> 24 & 255)))\\x$(printf %02x $(($1 >> 16 & 255)))\\x$(printf %02x $(($1 >> 8 & 255)))\\x$(printf %02x $(($1 & 255)))"; }

for split in train t10k; do
  img="$SRC/$split-images-idx3-ubyte"
  lbl="$SRC/$split-labels-idx1-ubyte"
  [[ -f "$img" && -f "$lbl" ]] || { echo "make-mnist-subset: $SRC has no $split files; run scripts/fetch-mnist.sh first" >&2; exit 1; }

  # images: magic 0x00000803, count, rows=28, cols=28, then count*784 bytes
  { be32 $((0x803)); be32 "$N"; be32 28; be32 28; head -c $((16 + N * 784)) "$img" | tail -c +17; } \
    | gzip -n -9 > "$OUT/$split-images-idx3-ubyte.gz"
  # labels: magic 0x00000801, count, then count bytes
  { be32 $((0x801)); be32 "$N"; head -c $((8 + N)) "$lbl" | tail -c +9; } > "$OUT/$split-labels-idx1-ubyte"
done

(cd "$OUT" && sha256sum ./*-ubyte*)
