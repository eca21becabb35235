#!/usr/bin/env bash
# Creates the project virtualenv, installs the pinned requirements, puts the project's source
# roots on its path and installs the `svod` command.
set -euo pipefail
venv=${1:-.venv}
top=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
if ! "$python" -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null; then
  echo "Svod needs Python 3.11 or newer as '$python' (set PYTHON=...)." >&2
  exit 1
fi
if ! "$python" -m venv --help >/dev/null 2>&1; then
  echo "Python's venv module is missing: install it (Debian: apt-get install -y python3-venv)." >&2
  exit 1
fi
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip >/dev/null
"$venv/bin/python" -m pip install -q -r "$top/requirements/dev.txt"
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
{
  echo "$top/gen"
  echo "$top/libs"
  echo "$top/cli"
  echo "$top"
  for s in ingestion identity profile segmentation quality; do echo "$top/services/$s/src"; done
} > "$site/svod.pth"
cat > "$venv/bin/svod" <<PY
#!$top/$venv/bin/python
from svod_cli.__main__ import main

raise SystemExit(main())
PY
chmod +x "$venv/bin/svod"
