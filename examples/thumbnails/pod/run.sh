#!/usr/bin/env bash
# The thumbnail generator on one machine, in containers: a pod of the itemq-dir
# ambassador and the manager (which runs itemq-thumbnail for each video), made
# by `podman kube play` from pod.yaml. See ../README.md.
#
#   examples/thumbnails/pod/run.sh            build what is missing, start the pod
#   examples/thumbnails/pod/run.sh down       stop and remove the pod
#
# MEDIA (default ./thumbnails-demo) holds incoming/ (drop .mp4 files here),
# thumbnails/ (the results) and state/ (the manager's job records); PORT
# (default 8081) is the host port of the manager's status API on 127.0.0.1.
# SAMPLES=N makes N short test videos with ffmpeg when incoming/ is empty
# (default 3). BUILD=0 skips building the images. POD names the pod
# (default itemq-thumbnails).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
MEDIA=${MEDIA:-$PWD/thumbnails-demo}
PORT=${PORT:-8081}
SAMPLES=${SAMPLES:-3}
PODMAN=${PODMAN:-podman}
POD=${POD:-itemq-thumbnails}

if [ "${1:-}" = down ]; then
  # From the media directory: podman kube looks for build contexts named like
  # the images in the working directory.
  cd "$MEDIA" && exec "$PODMAN" kube down pod.yaml
fi
mkdir -p "$MEDIA"
MEDIA=$(cd "$MEDIA" && pwd)
yaml="$MEDIA/pod.yaml"

if [ "${BUILD:-1}" = 1 ]; then
  IMAGES="itemq-dir itemq-manager itemq-thumbnail" ENGINE=$PODMAN "$repo/hack/images.sh" >/dev/null
  "$PODMAN" build -q -t localhost/itemq-thumbnails-worker:latest "$here" >/dev/null
fi

mkdir -p "$MEDIA/incoming" "$MEDIA/thumbnails" "$MEDIA/state"
chmod a+x "$MEDIA" # the containers (uid 65532) go through it
# The containers run as 65532: let them write (archive videos, thumbnails, state).
chmod 0777 "$MEDIA/incoming" "$MEDIA/thumbnails" "$MEDIA/state"
if [ "$SAMPLES" -gt 0 ] && [ -z "$(ls -A "$MEDIA/incoming")" ] && command -v ffmpeg >/dev/null; then
  for i in $(seq 1 "$SAMPLES"); do
    ffmpeg -hide_banner -loglevel error -f lavfi -i "testsrc=duration=4:size=320x240:rate=25" \
      -pix_fmt yuv420p "$MEDIA/incoming/.clip-$i.mp4" && mv "$MEDIA/incoming/.clip-$i.mp4" "$MEDIA/incoming/clip-$i.mp4"
  done
fi

sed -e "s|@MEDIA@|$MEDIA|g" -e "s|@PORT@|$PORT|g" -e "s|@POD@|$POD|g" "$here/pod.yaml" >"$yaml"
(cd "$MEDIA" && "$PODMAN" kube play "$yaml" >/dev/null)
cat <<EOT
pod $POD is running.
  drop videos into   $MEDIA/incoming/
  thumbnails go to   $MEDIA/thumbnails/<video>/
  jobs               curl -s http://127.0.0.1:$PORT/v1/jobs
  logs               $PODMAN logs $POD-manager
  stop               $0 down   (MEDIA=$MEDIA)
EOT
