#!/usr/bin/env bash
# Prepare, here, what bench/device_check.sh needs on the GPU machine, which reaches nothing:
# .whl/, the wheels its image lacks (mlflow-skinny, optuna, gin-config and what they need) for
# its Python 3.12 on x86-64, less the packages the image holds (the device tool's KINDS.md), so
# that the carried tree stays under 64 MiB; device_ref/, a copy of ../shared/reference for
# perf.py's side-by-side rows. Both folders are ignored by git (.git/info/exclude).
# Usage: bash bench/device_prepare.sh     (then carry .whl and device_ref with the device run)
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >>.git/info/exclude
PLATFORMS=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 \
         manylinux1_x86_64 manylinux_2_24_x86_64 manylinux_2_31_x86_64 manylinux_2_34_x86_64; do
    PLATFORMS+=(--platform "$p")
done
# mlflow-skinny: the tracking client and its sqlite store, without the UI's server bundle
python3 -m pip download -q --only-binary=:all: --python-version 3.12 --implementation cp \
    "${PLATFORMS[@]}" -d .whl "mlflow-skinny>=2.10,<4" "optuna>=4.0,<6" "gin-config>=0.5,<0.6" \
    "sqlalchemy>=2" alembic
# already in the device image: drop them (a second copy would shadow the image's)
HAVE="numpy pandas pyarrow scipy protobuf requests urllib3 idna certifi charset_normalizer
      pyyaml packaging typing_extensions click cloudpickle tqdm six python_dateutil markupsafe
      jinja2 psutil colorama attrs filelock fsspec werkzeug markdown anyio h11 httpx httpcore
      zipp rich pygments"
for name in $HAVE; do
    find .whl -maxdepth 1 -iname "$name-*.whl" -delete
done
du -sh .whl
ls .whl
if [ -d ../shared/reference ]; then
    grep -qx '/device_ref/' .git/info/exclude || echo '/device_ref/' >>.git/info/exclude
    rm -rf device_ref && cp -r ../shared/reference device_ref
fi
