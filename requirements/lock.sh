#!/usr/bin/env bash
# Regenerates the hash-locked requirements from pyproject.toml with uv (from PyPI):
#
#   dev.txt      the project's dependencies, every extra and the `dev` dependency group:
#                what scripts/test.sh (and so CI) installs
#   runtime.txt  the dependencies and the extras the image ships (RUNTIME_EXTRAS below), at
#                the versions of dev.txt (so CI tests what ships): what deploy/Dockerfile installs
#   build.txt    [build-system] requires: what deploy/Dockerfile builds the wheel with
#
# Existing pins are kept unless pyproject.toml no longer allows them; extra arguments go to
# every `uv pip compile`, e.g.
#
#   requirements/lock.sh                              after editing pyproject.toml
#   requirements/lock.sh --upgrade-package aiohttp    move one package to its newest version
#   requirements/lock.sh --upgrade                    move everything to the newest versions
#
# Universal (one file for Linux, macOS and Windows, CPython 3.11+), with the hashes of every
# wheel and sdist of each pinned version. tests/deploy checks the files cover pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNTIME_EXTRAS=(speed)
UV_VERSION=0.13.9 # used when `uv` is not on PATH

uv=$(command -v uv || true)
if [ -z "$uv" ]; then
  tools=$(mktemp -d)
  trap 'rm -rf "$tools"' EXIT
  python3 -m venv "$tools"
  "$tools/bin/pip" install -q --disable-pip-version-check "uv==$UV_VERSION"
  uv="$tools/bin/uv"
fi

compile=("$uv" pip compile --quiet --universal --python-version 3.11 --generate-hashes
  --custom-compile-command requirements/lock.sh)
runtime_extras=()
for extra in "${RUNTIME_EXTRAS[@]}"; do runtime_extras+=(--extra "$extra"); done

"${compile[@]}" pyproject.toml --all-extras --group dev -o requirements/dev.txt "$@"
"${compile[@]}" pyproject.toml "${runtime_extras[@]}" -c requirements/dev.txt \
  -o requirements/runtime.txt "$@"
python3 -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"], sep="\n")' |
  "${compile[@]}" - -o requirements/build.txt "$@"
