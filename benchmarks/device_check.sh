#!/usr/bin/env bash
# The GPU check, in one go on a CUDA machine: the tests marked `cuda` (fp16 + GradScaler, bf16,
# channels_last, out-of-memory recovery, checkpoints across devices, memory between runs), then the
# training throughput benchmark on the GPU. Installs nothing (run `pip install -e ".[test]"` first);
# about 3 minutes on one GPU, 8 at most (each step has its own time limit). Without CUDA it says so
# and exits 0.
#
#     bash benchmarks/device_check.sh            # PYTHON=/path/to/python to choose the interpreter
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
TEST_LIMIT_S=270
BENCH_LIMIT_S=180

if ! gpu=$("$PYTHON" -c '
import engine, torch  # engine first: its OpenMP setting must precede torch
if not torch.cuda.is_available():
    raise SystemExit(1)
p = torch.cuda.get_device_properties(0)
print(f"{p.name}, {p.total_memory / 2**30:.0f} GiB, compute capability {p.major}.{p.minor}; "
      f"torch {torch.__version__}, CUDA {torch.version.cuda}")
' 2>/dev/null); then
    echo "No CUDA GPU is visible to PyTorch here ($("$PYTHON" -c 'import torch; print("torch", torch.__version__, "built for CUDA", torch.version.cuda)' 2>/dev/null || echo "torch not importable")): nothing to check on this machine."
    exit 0
fi
echo "GPU: $gpu"

echo
echo "== tests marked cuda (limit ${TEST_LIMIT_S} s)"
started=$SECONDS
timeout "$TEST_LIMIT_S" "$PYTHON" -m pytest -m cuda -q -rs -p no:cacheprovider
tests=$?
echo "tests: exit $tests after $((SECONDS - started)) s"

echo
echo "== training throughput on the GPU (limit ${BENCH_LIMIT_S} s)"
started=$SECONDS
timeout "$BENCH_LIMIT_S" "$PYTHON" benchmarks/train_throughput.py --device cuda --epochs 2 --rounds 2
bench=$?
echo "benchmark: exit $bench after $((SECONDS - started)) s"

echo
if [ "$bench" -eq 1 ]; then
    echo "Note: the benchmark's speed goals (set for a 2-core CPU) were missed on this GPU; the figures are above."
    bench=0
fi
if [ "$tests" -eq 0 ] && [ "$bench" -eq 0 ]; then
    echo "Device check passed."
    exit 0
fi
echo "Device check FAILED: tests exit $tests, benchmark exit $bench (124: out of time)."
exit 1
