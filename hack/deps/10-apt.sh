#!/usr/bin/env bash
# Debian packages the tests use: ffmpeg/ffprobe (thumbnail executor).
source "$(dirname "$0")/../lib.sh"
apt_install ffmpeg
echo "ITEMQ_FFMPEG=$(command -v ffmpeg)"
echo "ITEMQ_FFPROBE=$(command -v ffprobe)"
