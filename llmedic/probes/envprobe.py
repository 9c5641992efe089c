"""Describe the Python environment this interpreter runs: installed distributions with their
requirements, the CUDA version torch was built for (when asked), and whether given modules import.

Stdlib only, so it runs under any service's interpreter: ``/srv/venv/bin/python envprobe.py --import
vllm --import torch``. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata as md
import json
import re
import sys


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--import", dest="imports", action="append", default=[])
    ap.add_argument("--torch", action="store_true", help="report torch.version.cuda")
    args = ap.parse_args()
    dists = {}
    for d in md.distributions():
        name = d.metadata["Name"]
        if not name:
            continue
        dists[_norm(name)] = {"name": name, "version": d.version, "requires": list(d.requires or [])}
    imports = {}
    for mod in args.imports:
        try:
            importlib.import_module(mod)
            imports[mod] = "ok"
        except Exception as exc:  # report every failure, whatever its type
            imports[mod] = f"{type(exc).__name__}: {exc}"
    torch_cuda = None
    if args.torch:
        try:
            import torch  # type: ignore[import-not-found]

            torch_cuda = torch.version.cuda
        except Exception as exc:
            torch_cuda = f"unavailable: {type(exc).__name__}"
    out = {
        "python": ".".join(map(str, sys.version_info[:3])),
        "executable": sys.executable,
        "distributions": dists,
        "imports": imports,
        "torch_cuda": torch_cuda,
    }
    sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
