#!/usr/bin/env bash
# Vendor the admin console's chart library (Chart.js, MIT) from the npm registry into the
# package, so the page loads nothing from a CDN. Run again to move to another version.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=${CHARTJS_VERSION:-4.5.1}
OUT=service/http/console/vendor
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "chart.js@$VERSION" >/dev/null && tar xzf "chart.js-$VERSION.tgz")
cp "$work/package/dist/chart.umd.min.js" "$OUT/chart.umd.min.js"
cp "$work/package/LICENSE.md" "$OUT/LICENSE-chart.js.md"
echo "vendored chart.js $VERSION into $OUT"
