"""``python -m benchmarks [--suite quick|full] [--out DIR] …`` from the repository root.

The same as ``riskmodel benchmark``, with the report going to ``benchmarks/results/<suite>/``
by default so that a run regenerates the committed results.
"""

import sys

from riskmodel.cli import main

if __name__ == "__main__":
    args = sys.argv[1:]
    suite = next((args[i + 1] for i, a in enumerate(args[:-1]) if a == "--suite"), "quick")
    if not any(a == "--out" or a.startswith("--out=") for a in args):
        args += ["--out", f"benchmarks/results/{suite}"]
    if not any(a.startswith("--command-line") for a in args):
        args += ["--command-line", "python -m benchmarks " + " ".join(sys.argv[1:])]
    sys.exit(main(["benchmark", *args]))
