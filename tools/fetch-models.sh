#!/usr/bin/env bash
# Fetches the MediaPipe model too large to keep in git (9.5 MB), for `mnet detect` and its tests:
#   object_detection_ssd_mobilenetv2_oidv4_fp16.tflite and object_detection_oidv4_labelmap.txt
# from the npm package @mediapipe/objectron (Apache-2.0), version pinned. The package keeps both inside one packed
# assets file; its loader script lists each file's byte range, which is what is cut out here. The model's sha256 is
# checked against the one MediaPipe publishes for the same file.
# Usage: tools/fetch-models.sh [DEST]   (default: tests/MobileNetSharp.Tests/TfLite/Fixtures/npm, ignored by git)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
dest=${1:-$here/tests/MobileNetSharp.Tests/TfLite/Fixtures/npm}
package=@mediapipe/objectron@0.4.1675468480
model=object_detection_ssd_mobilenetv2_oidv4_fp16.tflite
labels=object_detection_oidv4_labelmap.txt
sha=d0a5255bf8c4f5a0bc4240741a76c41d5e939f7655078f945f50ab53a9375da6

mkdir -p "$dest"
if [ -f "$dest/$model" ] && [ -f "$dest/$labels" ] && echo "$sha  $dest/$model" | sha256sum -c --quiet - 2>/dev/null; then
  echo "fetch-models: $dest/$model is already there"
  exit 0
fi
command -v npm >/dev/null || { echo "fetch-models: npm is needed (apt-get install npm)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "$package" >/dev/null && tar xzf ./*.tgz)
loader="$tmp/package/objectron_solution_packed_assets_loader.js"
data="$tmp/package/objectron_solution_packed_assets.data"

# Writes the byte range the loader lists for file $1 to $2.
cut_out() {
  local entry start end
  entry=$(grep -o "\"filename\": \"[^\"]*/$1\", \"start\": [0-9]*, \"end\": [0-9]*" "$loader") \
    || { echo "fetch-models: $1 is not listed in $loader" >&2; exit 1; }
  start=$(echo "$entry" | sed -E 's/.*"start": ([0-9]+).*/\1/')
  end=$(echo "$entry" | sed -E 's/.*"end": ([0-9]+).*/\1/')
  dd if="$data" of="$2" iflag=skip_bytes,count_bytes skip="$start" count=$((end - start)) bs=1M status=none
}
cut_out "$model" "$tmp/$model"
cut_out "$labels" "$tmp/$labels"
echo "$sha  $tmp/$model" | sha256sum -c --quiet - || { echo "fetch-models: $model from $package has an unexpected sha256" >&2; exit 1; }
mv "$tmp/$model" "$tmp/$labels" "$dest/"
echo "fetch-models: wrote $dest/$model and $labels (from $package)"
