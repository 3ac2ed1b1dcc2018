#!/bin/bash
# The HTML report in a real browser: `make test-html` (slow, needs Debian's
# chromium and python3-pil, which scripts/deps.sh html installs).
# Renders the dedup report of the sample corpus with headless Chromium and
# checks the screenshot: every group's kept image is framed in the report's
# KEEP green, and the thumbnails show real pictures (many colours), i.e. the
# embedded base64 JPEGs decoded in the browser with no server.
set -u
B=${NEARDUP_BIN:?NEARDUP_BIN must name the neardup binary}
ROOT=$(pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/neardup-html.XXXXXX")
trap 'rm -rf "$T"' EXIT
export NEARDUP_MODEL=$ROOT/tests/data/cli/tiny.ndm
CHROMIUM=$(command -v chromium || command -v chromium-browser)
if [ -z "$CHROMIUM" ]; then
	echo "FAIL html_screenshot: no chromium (scripts/deps.sh html installs it)"
	exit 1
fi
"$B" ingest -q --index "$T/db" "$ROOT/data" || { echo "FAIL html_screenshot: ingest"; exit 1; }
"$B" dedup -q --index "$T/db" --min-sim 0.975 --format html -o "$T/report.html" ||
	{ echo "FAIL html_screenshot: dedup"; exit 1; }
groups=$(grep -o '<section' "$T/report.html" | wc -l)
# --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start
timeout 120 "$CHROMIUM" --headless=new --no-sandbox --disable-gpu --hide-scrollbars \
	--window-size=1000,1400 --screenshot="$T/shot.png" "file://$T/report.html" >"$T/log" 2>&1
if [ ! -s "$T/shot.png" ]; then
	echo "FAIL html_screenshot: no screenshot: $(tail -n 5 "$T/log")"
	exit 1
fi
[ -n "${KEEP_SHOT:-}" ] && cp "$T/shot.png" "$KEEP_SHOT"
/usr/bin/python3 - "$T/shot.png" "$groups" <<'PY'
import sys
from PIL import Image
im = Image.open(sys.argv[1]).convert("RGB")
groups = int(sys.argv[2])
w, h = im.size
px = im.load()
# rows holding the KEEP frame colour #2a9d3a: one run of rows per kept image
def green(p):
    return abs(p[0] - 0x2a) < 12 and abs(p[1] - 0x9d) < 12 and abs(p[2] - 0x3a) < 12
rows = [y for y in range(h) if sum(green(px[x, y]) for x in range(0, w // 2)) > 100]
runs = sum(1 for i, y in enumerate(rows) if i == 0 or y != rows[i - 1] + 1)
colours = len(set(im.getdata()))
ok = groups >= 4 and runs >= 2 * groups and colours > 5000  # top + bottom edge per frame
print(f"{'PASS' if ok else 'FAIL'} html_screenshot ({groups} groups in the report, "
      f"{runs} KEEP frame edges seen, {colours} colours in a {w}x{h} screenshot)")
sys.exit(0 if ok else 1)
PY
