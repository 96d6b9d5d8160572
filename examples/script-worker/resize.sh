#!/bin/sh
# The user's script of the script-worker example: make a small PNG of one
# image. itemq-script runs it once per work item, after fetching the item's
# image (data.url or data.path) to INPUT_FILE; whatever it writes into
# OUTPUT_DIR is uploaded to OUTPUT_URL/<item key>/, then _SUCCESS.json.
#
# Exit codes: 0 done; 3 the input is not an image (listed in
# SCRIPT_PERMANENT_EXIT_CODES: the item fails for good, no retry); anything else
# is retried by the manager.
set -eu
: "${INPUT_FILE:?the item names no image (data.url or data.path)}"
geometry=${RESIZE_GEOMETRY:-256x256}
name=$(basename "$INPUT_FILE")
if ! identify "$INPUT_FILE" >/dev/null 2>&1; then
  echo "resize: $name is not an image ImageMagick can read" >&2
  exit 3
fi
convert "$INPUT_FILE[0]" -auto-orient -resize "$geometry" -strip "$OUTPUT_DIR/${name%.*}-$geometry.png"
identify -format 'resize: %f %wx%h\n' "$OUTPUT_DIR/${name%.*}-$geometry.png"
