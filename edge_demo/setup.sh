#!/usr/bin/env bash
# Set up edge_demo on a device: a virtual environment with its requirements only.
#
#   edge_demo/setup.sh [--legacy] [--midi] [VENV]     (default VENV: ~/mvae-edge)
#
#   --legacy  the legacy tflite-runtime 2.14 and numpy<2 (Python 3.9-3.11) instead of
#             ai-edge-litert (Python 3.10-3.13): it runs the float32 and float16 exports
#   --midi    also python-rtmidi, for `musicbox --port` (live MIDI out; needs the
#             ALSA headers to build where no wheel fits: sudo apt-get install libasound2-dev)
#
# Then, from the directory that holds edge_demo/:  VENV/bin/python -m edge_demo --version
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
requirements="$here/requirements.txt"
extra=()
venv=""
for arg in "$@"; do
  case "$arg" in
    --legacy) requirements="$here/requirements-legacy.txt" ;;
    --midi) extra+=(python-rtmidi) ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "setup.sh: unknown option $arg (see --help)" >&2; exit 2 ;;
    *) venv="$arg" ;;
  esac
done
venv="${venv:-$HOME/mvae-edge}"
python="${PYTHON:-python3}"
if ! "$python" -c 'import sys; sys.exit(not ((3, 9) <= sys.version_info[:2] <= (3, 13)))'; then
  echo "setup.sh: needs Python 3.9-3.13 ($python is $("$python" --version 2>&1)); set PYTHON=" >&2
  exit 2
fi
if [ "$(uname -m)" = armv7l ]; then
  echo "setup.sh: this is a 32-bit OS (armv7l); LiteRT wheels are for 64-bit Raspberry Pi OS" \
       "(aarch64): install the 64-bit image" >&2
  exit 2
fi
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet -r "$requirements" ${extra[@]+"${extra[@]}"}
cd "$here/.."
"$venv/bin/python" -m edge_demo --version
echo "edge_demo is ready: cd $(pwd) && $venv/bin/python -m edge_demo sample --out out"
if ! command -v fluidsynth > /dev/null; then
  echo "(for musicbox --audio: sudo apt-get install fluidsynth fluid-soundfont-gm)"
fi
