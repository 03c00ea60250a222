#!/usr/bin/env bash
# Installs the Debian packages ALS ePRO needs beyond Python (see ../shared/reference/stack.md):
# Qt under Xvfb, a CJK font, chromium for the staff-page tests, python3-venv, and nginx-light
# (the deployment example is tested with a real nginx in front of a real server), poppler-utils
# (pdftoppm/pdftotext check the staff print view rendered to PDF), the accessibility bus with pyatspi
# (screen-reader tree test) and speech-dispatcher + espeak-ng (read aloud through QTextToSpeech).
# As root it installs what is missing; otherwise it prints the exact command and exits 1.
set -euo pipefail
PKGS="python3-venv xvfb xauth libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0 libxkbcommon-x11-0 \
libegl1 libgl1 libfontconfig1 libdbus-1-3 fonts-wqy-microhei chromium nginx-light poppler-utils \
dbus at-spi2-core python3-pyatspi speech-dispatcher espeak-ng"
missing=""
for p in $PKGS; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
  fi
done
[ -z "$missing" ] && exit 0
cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends$missing"
if [ "$(id -u)" = "0" ]; then
  echo "sysdeps: installing$missing"
  sh -c "$cmd" >/tmp/als-epro-apt.log 2>&1 || { tail -20 /tmp/als-epro-apt.log; exit 1; }
else
  echo "sysdeps: these Debian packages are missing:$missing" >&2
  echo "sysdeps: run as root:  sudo sh -c '$cmd'" >&2
  exit 1
fi
