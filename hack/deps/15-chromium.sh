#!/usr/bin/env bash
# Debian's chromium: the dashboard's browser tests drive it headless
# (internal/manager/dashboard, with chromedp).
source "$(dirname "$0")/../lib.sh"
apt_install chromium
echo "ITEMQ_CHROMIUM=$(command -v chromium)"
