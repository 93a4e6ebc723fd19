"""Command line: `spira --help` and `spira stages` from a cold process, against naive counterparts.

Each figure is the wall time of a fresh process (start-up included), the median of ``--repeat``
runs, measured in the same run as its baseline:

- `spira --help` against ``python -c "import typer"`` (the least any Typer program pays);
- `spira stages` on 1 and on 48 12-MP photos (``vision.synthetic.make_photo``) with a promoted
  model (a small synthetic one, trained once before timing in a temporary var folder, its graph
  exported and compiled by one untimed run) against a plain PyTorch loop: import torch and timm,
  load the same backbone, then per photo a full PIL decode, resize, normalise and one forward
  pass. The loop does less than `spira stages` (no upload checks, face scan, drawing features
  or stage head), so the ratio understates the gain.

Usage: python bench/cli.py [--photos 48] [--repeat 3] [--write]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

NAIVE_LOOP = """
import sys
from pathlib import Path
import numpy as np, torch, timm
from PIL import Image
from vision.embed import load_backbone
model, cfg, _ = load_backbone("efficientnet_lite0")
_, h, w = cfg["input_size"]
mean = torch.tensor(cfg["mean"]).view(3, 1, 1)
std = torch.tensor(cfg["std"]).view(3, 1, 1)
for path in sorted(Path(sys.argv[1]).glob("*.jpg")):
    img = Image.open(path).convert("RGB").resize((w, h), Image.BICUBIC)
    x = (torch.from_numpy(np.array(img)).permute(2, 0, 1).float() / 255 - mean) / std
    with torch.no_grad():
        y = model(x[None])
    print(path.name, float(y.sum()))
"""


def _wall(cmd: list[str], env: dict[str, str], repeat: int) -> float:
    return _timed(cmd, env, repeat)[0]


def _timed(cmd: list[str], env: dict[str, str], repeat: int) -> tuple[float, float]:
    """Median wall time and median CPU time (user + system, all threads) of a fresh process."""
    walls, cpus = [], []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, capture_output=True, cwd=ROOT)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(
            after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime,
        )
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=48, help="photos in the folder run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (median)")
    parser.add_argument("--write", action="store_true", help="write the results to BENCHMARKS.md")
    args = parser.parse_args()

    from bench.common import write_section
    from vision.synthetic import make_photo

    py = sys.executable
    spira = [py, "-c", "from cli.main import main; main()"]
    tmp = Path(tempfile.mkdtemp(prefix="spira-bench-cli-"))
    env = {**os.environ, "SPIRA_VAR_DIR": str(tmp / "var"), "PYTHONPATH": str(ROOT)}
    env.pop("SPIRA_MODELS_DIR", None)
    one, many = tmp / "one", tmp / "many"
    one.mkdir()
    many.mkdir()
    print(f"generating {args.photos} 12-MP photos in {tmp}", flush=True)
    for i in range(args.photos):
        (many / f"{i:03d}.jpg").write_bytes(make_photo(i % 5, i, megapixels=12))
    (one / "000.jpg").write_bytes((many / "000.jpg").read_bytes())
    print("training a small synthetic model (untimed)", flush=True)
    subprocess.run(
        [*spira, "train", "--synthetic", "--n", "120", "--promote"], env=env, check=True, cwd=ROOT
    )
    subprocess.run([*spira, "stages", str(one)], env=env, check=True, cwd=ROOT)  # export, compile

    load_before = os.getloadavg()
    rows = []
    help_s = _wall([*spira, "--help"], env, args.repeat)
    typer_s = _wall([py, "-c", "import typer"], env, args.repeat)
    rows.append(("`spira --help`", help_s, '`python -c "import typer"`', typer_s))
    cpu = {}
    for folder, label in ((one, "1 photo"), (many, f"{args.photos} photos")):
        ours, cpu[label] = _timed([*spira, "stages", str(folder)], env, args.repeat)
        naive = _wall([py, "-c", NAIVE_LOOP, str(folder)], env, args.repeat)
        rows.append((f"`spira stages`, {label}", ours, f"PyTorch loop, {label}", naive))
        print(f"{label}: spira {ours:.2f} s, naive {naive:.2f} s", flush=True)
    load_after = os.getloadavg()

    lines = [
        "| command | wall s | naive counterpart | wall s | naive / spira |",
        "|---|---:|---|---:|---:|",
    ]
    for name, ours, base_name, base in rows:
        lines.append(f"| {name} | {ours:.2f} | {base_name} | {base:.2f} | {base / ours:.1f}× |")
    stages_ratio = rows[-1][3] / rows[-1][1]
    many_label = f"{args.photos} photos"
    body = "\n".join(
        [
            "`python bench/cli.py --write`: wall time of a fresh process, start-up included, median "
            f"of {args.repeat} runs; 12-MP synthetic photos; the OpenVINO graph exported and "
            "compiled once before timing (an install's first run pays that once).",
            "",
            *lines,
            "",
            f"Targets: `spira --help` <= 0.5 s: {'met' if help_s <= 0.5 else 'NOT met'} "
            f"({help_s:.2f} s); `spira stages` on one photo <= 2.5 s: "
            f"{'met' if rows[1][1] <= 2.5 else 'NOT met'} ({rows[1][1]:.2f} s); on "
            f"{args.photos} photos >= 5× the naive loop: "
            f"{'met' if stages_ratio >= 5 else 'NOT met'} ({stages_ratio:.1f}×).",
            f"CPU time (user + system, every thread) of `spira stages`: {cpu['1 photo']:.2f} s "
            f"for 1 photo, {cpu[many_label]:.2f} s for {args.photos} "
            f"({(cpu[many_label] - cpu['1 photo']) / max(1, args.photos - 1) * 1000:.0f} ms a "
            f"further photo); on {os.cpu_count()} cores its wall time cannot fall below "
            f"{cpu[many_label] / (os.cpu_count() or 1):.2f} s, which is "
            f"{rows[-1][3] / (cpu[many_label] / (os.cpu_count() or 1)):.1f}× the naive loop.",
            f"Load average (1 min) {load_before[0]:.2f} before, {load_after[0]:.2f} after.",
        ]
    )
    print(body)
    if args.write:
        write_section("Command line", body, keep=("Reading",))


if __name__ == "__main__":
    main()
