#!/usr/bin/env bash
# Render an mgenet report (or the index.html of `mgenet score-video`) in a headless Chromium and save a screenshot of
# it: a quick look at how the page reads in a browser (figure sizes, tables, labels) on a machine without a desktop,
# e.g. a cluster login node.
#
#   scripts/screenshot_report.sh [REPORT_HTML] [OUT_PNG] [WIDTH] [HEIGHT]
#
# Defaults: results/demo/eval/report.html, the report's name with .png, a 1400 x 4000 px window (the top of the
# report: metrics, ablations, ROC and the first videos; pass a larger HEIGHT for more). `make report-screenshot` runs it.
set -euo pipefail

report=${1:-results/demo/eval/report.html}
out=${2:-${report%.html}.png}
width=${3:-1400}
height=${4:-4000}

browser=""
for name in chromium chromium-browser google-chrome google-chrome-stable; do
    if command -v "$name" >/dev/null 2>&1; then
        browser=$name
        break
    fi
done
if [ -z "$browser" ]; then
    echo "error: no Chromium or Chrome on PATH; install one (Debian/Ubuntu: apt-get install chromium)." >&2
    exit 1
fi
if [ ! -f "$report" ]; then
    echo "error: $report not found; snakemake makes report.html, mgenet score-video makes index.html." >&2
    exit 1
fi

# A throwaway profile, so the run neither reads nor changes the user's browser profile.
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
flags=(--headless --disable-gpu --hide-scrollbars --user-data-dir="$profile" --window-size="$width,$height")
# Chromium refuses to start its sandbox as root (containers); a normal user keeps it.
if [ "$(id -u)" -eq 0 ]; then
    flags+=(--no-sandbox)
fi
mkdir -p "$(dirname "$out")"
"$browser" "${flags[@]}" --screenshot="$(realpath "$out")" "file://$(realpath "$report")" >/dev/null 2>&1
if [ ! -s "$out" ]; then
    echo "error: $browser wrote no screenshot to $out." >&2
    exit 1
fi
echo "$out"
