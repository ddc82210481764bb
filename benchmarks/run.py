"""`make bench`: run every benchmarks/bench_*.py and print its table (figures, not assertions).

Each module has a ``main()``; it prints what it measured and returns nothing. Run one alone with
``python benchmarks/bench_hsv_codec.py``. Results go into docs/benchmarks.md by hand, with the machine.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import sys
import time
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the bench modules share helpers (bench_hsv_model, decode_ops)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{cpu}, {os.cpu_count()} cores, {gpu}; Python {platform.python_version()}, torch {torch.__version__}"


def main(only: list[str]) -> None:
    print(f"# artforge benchmarks, {date.today()}\n# machine: {machine()}\n")
    for path in sorted(HERE.glob("bench_*.py")):
        if only and not any(o in path.stem for o in only):
            continue
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        print(f"## {path.stem}")
        t0 = time.perf_counter()
        module.main()
        print(f"({time.perf_counter() - t0:.0f}s)\n", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
