#!/usr/bin/env bash
# Makes the base image of examples/scikit-byo without pulling anything: debootstrap a minimal Debian
# from the mirror apt already uses, with Python, scikit-learn and the workshop's serving stack
# (nginx -> gunicorn -> Flask), then `docker import` it. Skips the work when the image exists.
# Machines that can pull images can build base/Dockerfile instead; both make the same tag.
# Usage: examples/scikit-byo/base/offline-base.sh [tag, default sagebrush/scikit-base:bookworm]
set -euo pipefail
tag=${1:-sagebrush/scikit-base:bookworm}
# Tests may call this at once; one builds, the others wait and find the image.
exec 9>"${TMPDIR:-/tmp}/sagebrush-scikit-base.lock"
flock 9
if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "$tag already exists"
  exit 0
fi
command -v debootstrap >/dev/null || { apt-get update -q && apt-get install -y -q debootstrap; }
mirror=$(grep -hoE '^(URIs:|deb) *https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
  | head -1 | grep -oE 'https?://[^ ]+' || true)
mirror=${mirror:-http://deb.debian.org/debian}
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
echo "debootstrap bookworm from $mirror (a few minutes the first time)"
debootstrap --variant=minbase --include=python3,python3-sklearn,python3-flask,gunicorn,nginx-light \
  bookworm "$root" "$mirror" >"$root.log" 2>&1 || { tail -20 "$root.log"; exit 1; }
rm -f "$root.log"
# Trim what a model server never needs.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/*
tar -C "$root" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV PYTHONUNBUFFERED=1' \
  - "$tag" >/dev/null
echo "built $tag ($(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}'))"
