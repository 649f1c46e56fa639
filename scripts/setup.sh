#!/usr/bin/env bash
# Set up everything the engine needs, in a virtual environment at .venv (safe to run again).
#   PYTHON=python3.11 bash scripts/setup.sh      choose the interpreter (>= 3.10)
#   TORCH_SPEC="torch==2.13.0" ...               which torch to install when none is importable
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}

# System tools: bubblewrap sandboxes node programs (without it they run unsandboxed, after a warning);
# TeX Live and poppler build and read papers; Chromium (headless) tests the run viewer page.
# Installed with apt-get when run as root on Debian/Ubuntu.
SYSTEM_PACKAGES="bubblewrap texlive-latex-base texlive-latex-extra texlive-fonts-recommended texlive-science
                 chktex latexmk poppler-utils chromium"
if ! command -v bwrap >/dev/null 2>&1 || ! command -v pdflatex >/dev/null 2>&1 \
    || ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing system packages (apt-get): bubblewrap, TeX Live, poppler, chromium"
    apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $SYSTEM_PACKAGES >/dev/null
  else
    echo "setup: missing system packages; install them with:" \
         "sudo apt-get install --no-install-recommends" $SYSTEM_PACKAGES >&2
  fi
fi

"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
  || { echo "setup: Python >= 3.10 is needed ($PYTHON is $("$PYTHON" --version 2>&1))" >&2; exit 1; }
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# Keep a torch that is already there (a CUDA build you chose); otherwise install TORCH_SPEC.
.venv/bin/python -c 'import torch' 2>/dev/null || .venv/bin/python -m pip install -q "$TORCH_SPEC"
.venv/bin/python -m pip install -q -e ".[dev]"
echo "setup: ready (.venv)"
