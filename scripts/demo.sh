#!/usr/bin/env bash
# The README's demo: explain cluttered-MNIST test scenes with Excitation Backprop and contrastive EBP using the
# committed model (models/cluttered-mnist-vgg.*), write side-by-side figures and print the pointing game.
#
#   scripts/demo.sh [--out out/demo] [--figures 6] [--scenes 300]
#
# Uses the full MNIST t10k split when it is cached (scripts/fetch-mnist.sh is tried once, quietly); otherwise the
# committed 200-digit t10k subset. Nothing is trained. About two minutes on 2 cores including the Release build.
set -euo pipefail

# Never let a system libtorch (e.g. Debian's python3-torch) shadow TorchSharp's own.
unset LD_LIBRARY_PATH

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

if [[ "${EBP_DEMO_FETCH:-1}" != "0" ]]; then
  # Optional: the full t10k set. If it fails (offline, no npm), the demo falls back to the committed subset.
  "$ROOT/scripts/fetch-mnist.sh" >/dev/null 2>&1 || echo "demo: MNIST cache unavailable; using the committed 200-digit t10k subset." >&2
fi

exec dotnet run -c Release --project "$ROOT/samples/Ebp.Demo" -- "$@"
