#!/usr/bin/env bash
# Installs everything ewa needs on Debian 12, as root. Idempotent: on a ready machine it checks
# and exits in seconds.
#   Debian packages: compilers and build tools, LibTorch's companions (HDF5, PCL, Open3D,
#     nlohmann-json, CLI11, GoogleTest, Google Benchmark), cairo (plots), ccache, Xvfb and Mesa
#     (headless Open3D rendering), a font for plot text, Gloo headers (multi-process training),
#     the Fashion-MNIST data.
#     liblinear (the linear SVM probe, `ewa svm`; its command-line tools are the tests' oracle).
#     Slurm and munge (`ewa study --launcher slurm` is tested on a private single-node cluster the
#     test starts: tests/slurm/cluster.sh).
#   LibTorch: the pinned `torch` wheel from PyPI (CUDA 13 build) in a virtual environment outside
#     the source tree: $EWA_VENV (default /opt/ewa-venv), so every clone on the machine shares it.
#     Beside it, for the tests' fixtures and oracles only (users never need Python): numpy (the
#     released few-shot pickles are numpy pickles), timm 0.4.5's scheduler (the official LR
#     schedule, installed without its dependencies), SciPy (the oracle of `ewa study`'s
#     statistics) and TensorBoard (its reader checks the event files every run writes).
# The CUDA toolkit is not installed here: CMake uses /usr/local/cuda when it exists.
set -euo pipefail

TORCH_VERSION=2.11.0
EWA_VENV=${EWA_VENV:-/opt/ewa-venv}
PACKAGES=(
  build-essential cmake ninja-build ccache git pkg-config zlib1g-dev
  python3 python3-venv
  libhdf5-dev libpcl-dev libopen3d-dev nlohmann-json3-dev libcli11-dev
  googletest libgtest-dev libbenchmark-dev
  dataset-fashion-mnist xvfb libcairo2-dev fonts-dejavu-core libgl1-mesa-dri libgloo-dev
  liblinear-dev liblinear-tools libpng-dev libjpeg62-turbo-dev
  slurm-wlm munge
)
NUMPY_VERSION=2.3.5
TIMM_VERSION=0.4.5
SCIPY_VERSION=1.17.1
TENSORBOARD_VERSION=2.21.0
PILLOW_VERSION=13.0.0
TORCHVISION_VERSION=0.26.0  # torch 2.11's; timm imports it, and its transforms are image oracles

die() { echo "install-deps: error: $*" >&2; exit 1; }

if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else die "run as root (apt-get needs it)"; fi
else
  SUDO=
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" \
    >/tmp/ewa-apt.log 2>&1 || { tail -20 /tmp/ewa-apt.log >&2; die "apt-get install failed (log: /tmp/ewa-apt.log)"; }
else
  echo "install-deps: Debian packages present (${#PACKAGES[@]} checked)"
fi

have_torch() {
  [ -x "$EWA_VENV/bin/python" ] &&
    "$EWA_VENV/bin/python" -c "import torch,sys; sys.exit(0 if torch.__version__.split('+')[0]=='$TORCH_VERSION' else 1)" 2>/dev/null
}
if have_torch; then
  echo "install-deps: torch $TORCH_VERSION present in $EWA_VENV"
else
  echo "install-deps: installing torch==$TORCH_VERSION (CUDA 13 wheel, about 4.5 GB) into $EWA_VENV"
  [ -x "$EWA_VENV/bin/python" ] || /usr/bin/python3 -m venv "$EWA_VENV" || die "cannot create the virtual environment $EWA_VENV"
  "$EWA_VENV/bin/pip" install -q --disable-pip-version-check "torch==$TORCH_VERSION" \
    || die "pip install torch==$TORCH_VERSION failed"
  have_torch || die "torch $TORCH_VERSION does not import from $EWA_VENV"
fi
have_oracles() {
  "$EWA_VENV/bin/python" -c "import numpy,importlib.metadata as m,sys; sys.exit(0 if numpy.__version__=='$NUMPY_VERSION' and m.version('timm')=='$TIMM_VERSION' and m.version('scipy')=='$SCIPY_VERSION' and m.version('tensorboard')=='$TENSORBOARD_VERSION' and m.version('pillow')=='$PILLOW_VERSION' and m.version('torchvision').split('+')[0]=='$TORCHVISION_VERSION' else 1)" 2>/dev/null
}
if have_oracles; then
  echo "install-deps: numpy $NUMPY_VERSION, timm $TIMM_VERSION, scipy $SCIPY_VERSION, tensorboard $TENSORBOARD_VERSION, Pillow $PILLOW_VERSION and torchvision $TORCHVISION_VERSION present in $EWA_VENV (test oracles)"
else
  echo "install-deps: installing numpy==$NUMPY_VERSION, timm==$TIMM_VERSION, scipy==$SCIPY_VERSION, tensorboard==$TENSORBOARD_VERSION, pillow==$PILLOW_VERSION and torchvision==$TORCHVISION_VERSION (test oracles) into $EWA_VENV"
  "$EWA_VENV/bin/pip" install -q --disable-pip-version-check "numpy==$NUMPY_VERSION" "scipy==$SCIPY_VERSION" \
    "tensorboard==$TENSORBOARD_VERSION" "pillow==$PILLOW_VERSION" || die "pip install numpy, scipy, tensorboard and pillow failed"
  "$EWA_VENV/bin/pip" install -q --disable-pip-version-check --no-deps "timm==$TIMM_VERSION" "torchvision==$TORCHVISION_VERSION" \
    || die "pip install timm and torchvision failed"
fi
prefix=$("$EWA_VENV/bin/python" -c 'import torch;print(torch.utils.cmake_prefix_path)' 2>/dev/null)
cuda=$("$EWA_VENV/bin/python" -c 'import torch;print(torch.version.cuda)' 2>/dev/null)
echo "install-deps: ready: LibTorch $TORCH_VERSION (CUDA $cuda) at $prefix; nvcc: $( [ -x /usr/local/cuda/bin/nvcc ] && echo /usr/local/cuda/bin/nvcc || echo none, CUDA kernels off)"
