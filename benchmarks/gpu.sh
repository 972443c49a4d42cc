#!/usr/bin/env bash
# GPU figures in one short run (about 5 minutes on one recent GPU): the suite's cost next to
# the bare model for the ResNet-18 (width 64) at 32×32×3 in fp32 and bf16, and for the
# study's CNN at 28×28, N = 1000, c4; then a quick study (`ginv run --quick`) on the GPU.
# Every result is JSON under benchmarks/results/ (or $OUT when set), named gpu-*.json.
#
#   bash benchmarks/gpu.sh            # DEVICE=cuda:1 bash benchmarks/gpu.sh for another GPU
#
# tmeasures is not timed here: its virtual environment is made from PyPI on demand, and a
# GPU machine without network has none (run `ginv bench` on a CPU machine for that figure).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
RESULTS="${OUT:-benchmarks/results}"
DEVICE="${DEVICE:-cuda}"
mkdir -p "$RESULTS"
ginv() { python -m ginvariance.cli "$@"; }

python - "$RESULTS/gpu-machine.json" <<'PY'
import json, platform, subprocess, sys
import torch
if not torch.cuda.is_available():
    sys.exit("gpu.sh: torch sees no CUDA GPU; nothing to measure")
smi = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version",
                      "--format=csv,noheader"], capture_output=True, text=True).stdout.strip()
info = {"gpu": torch.cuda.get_device_name(), "nvidia_smi": smi, "torch": torch.__version__,
        "cuda": torch.version.cuda, "python": platform.python_version()}
open(sys.argv[1], "w").write(json.dumps(info, indent=1) + "\n")
print(info)
PY

echo "== bench: resnet (width 64) 32x32x3, fp32"
timeout 200 ginv bench --device "$DEVICE" --size 32 --model resnet --width 64 --n 1000 \
  --threads 1 --rounds 7 --skip-tmeasures --skip-naive --rss-n 1000,4000 --json \
  --out "$RESULTS/gpu-bench-32x32-resnet.json" > /dev/null

echo "== bench: resnet (width 64) 32x32x3, bf16 autocast"
timeout 120 ginv bench --device "$DEVICE" --size 32 --model resnet --width 64 --n 1000 \
  --threads 1 --rounds 7 --precision bf16 --skip-tmeasures --skip-naive --skip-train \
  --skip-rss --json --out "$RESULTS/gpu-bench-32x32-resnet-bf16.json" > /dev/null

echo "== bench: study cnn 28x28"
timeout 120 ginv bench --device "$DEVICE" --size 28 --model cnn --n 1000 --threads 1 \
  --rounds 7 --skip-tmeasures --skip-rss --json \
  --out "$RESULTS/gpu-bench-28x28.json" > /dev/null

echo "== quick study on the GPU"
study="$(mktemp -d)"
trap 'rm -rf "$study"' EXIT
timeout 240 ginv run --quick --device "$DEVICE" --out "$study/run" --json \
  > "$RESULTS/gpu-study-quick.json"

python - "$RESULTS" <<'PY'
import json, pathlib, sys
for path in sorted(pathlib.Path(sys.argv[1]).glob("gpu-bench-*.json")):
    result = json.loads(path.read_text())
    for run in result["runs"]:
        ips = {k: round(v) for k, v in run["images_per_second"].items()}
        ratios = {k: round(run["ratios"][k], 3) for k in ("suite_logit/forward", "suite/forward_backward")}
        print(path.name, "images/s", ips, "ratios", ratios)
PY
