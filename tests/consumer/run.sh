#!/usr/bin/env bash
# Consumer test: packs Ebp.Core to a local folder feed, creates a fresh console project outside the repository that
# references Ebp.Core and TorchSharp-cpu from that feed (plus the user's normal NuGet sources), builds and runs an EBP call
# whose map is checked against a hand-computed value, and checks that the libstdc++ step (build/Ebp.LibTorchSharpCompat.targets)
# reached the application through the package's buildTransitive folder. Prints "consumer test: PASS" or "... FAIL: why".
#   bash tests/consumer/run.sh            (from anywhere; about a minute once the repository has been restored)
set -uo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
template="$repo/tests/consumer/template"
unset LD_LIBRARY_PATH
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

work=$(mktemp -d "${TMPDIR:-/tmp}/ebp-consumer.XXXXXX")
# A version no earlier run used, so the global package cache never serves a stale Ebp.Core.
suffix="consumer.$(date +%s).$$"
prefix=$(sed -n 's:.*<VersionPrefix>\(.*\)</VersionPrefix>.*:\1:p' "$repo/Directory.Build.props")
version="$prefix-$suffix"
cache="${NUGET_PACKAGES:-$HOME/.nuget/packages}/ebp.core/$version"
cleanup() { rm -rf "$work" "$cache"; }
trap cleanup EXIT

fail() { echo "consumer test: FAIL: $*"; [ -f "$work/log" ] && tail -n 40 "$work/log"; exit 1; }

case "$work/" in "$repo"/*) fail "the temporary folder $work is inside the repository";; esac

echo "consumer test: packing Ebp.Core $version to $work/feed"
dotnet pack "$repo/src/Ebp.Core/Ebp.Core.csproj" -c Release -o "$work/feed" -p:VersionSuffix="$suffix" >"$work/log" 2>&1 \
  || fail "dotnet pack of Ebp.Core"
[ -f "$work/feed/Ebp.Core.$version.nupkg" ] || fail "no Ebp.Core.$version.nupkg in the feed"

mkdir -p "$work/app"
cp "$template/Consumer.csproj" "$template/Program.cs" "$work/app/"
# The local feed in front of the user's sources (no <clear/>: the normal sources come from the user's NuGet config).
cat >"$work/app/nuget.config" <<XML
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <packageSources>
    <add key="ebp-local" value="$work/feed" />
  </packageSources>
</configuration>
XML

echo "consumer test: building a fresh console project in $work/app"
dotnet build "$work/app/Consumer.csproj" -c Release -p:EbpVersion="$version" >"$work/log" 2>&1 || fail "dotnet build of the consumer"

# The package's buildTransitive targets must be imported by the application's restore-generated targets ...
grep -q "ebp.core/$version/buildTransitive/Ebp.Core.targets" "$work/app/obj/Consumer.csproj.nuget.g.targets" \
  || fail "Ebp.Core's buildTransitive/Ebp.Core.targets is not imported by the consumer"
# ... and must have patched the output where the system's libstdc++ lacks GLIBCXX_3.4.32 (Debian 12).
native="$work/app/bin/Release/net10.0/runtimes/linux-x64/native/libLibTorchSharp.so"
if [ "$(uname -s)" = Linux ]; then
  [ -f "$native" ] || fail "no $native in the consumer's output"
  if ! grep -qa "GLIBCXX_3\.4\.32" /lib/x86_64-linux-gnu/libstdc++.so.6 /usr/lib/x86_64-linux-gnu/libstdc++.so.6 2>/dev/null; then
    grep -q "Ebp: marked GLIBCXX_3.4.32 weak" "$work/log" || fail "the libstdc++ step did not patch the consumer's libLibTorchSharp.so"
    echo "consumer test: the libstdc++ step patched the consumer's output (through buildTransitive)"
  fi
fi

echo "consumer test: running"
(cd "$work/app" && dotnet bin/Release/net10.0/Consumer.dll) >"$work/log" 2>&1 || fail "the consumer's EBP call"
cat "$work/log"
grep -q "^OK:" "$work/log" || fail "no OK line"
echo "consumer test: PASS"
