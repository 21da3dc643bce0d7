"""The whole pipeline end to end on the embedded default: a small generated world in a local lake,
the observational statistics, InfNet shards, brief CPU training of InfNet and LR, and the report
with their results.

    python -m jobs.demo --lake lake --out out [--share-records 200000] [--seed 7] [--epochs 3]

Each step is the same command a user would run by hand (printed as it starts); the Spark steps
share one local session, the training steps run as their own processes (the torch side never
shares a process with Spark).

The closing table puts the demo's test metrics next to the 95 % interval that the test split's
size alone allows each AUC-PR, and says whether that split ranks the models. A 200k-record
world's test split (about 2,200 queries, 330 positives) cannot: each AUC-PR is known to about
+-0.05, more than the gap between InfNet and LR. So the table is followed by the reference
comparison measured on a larger world over several seeds (``REFERENCE``), with the command
that measured it and where it is recorded.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

if not __package__:
    # Run as a file (spark-submit jobs/<name>.py): the repository root takes this folder's
    # place on the path, so its packages import and jobs/pipeline.py cannot hide `pipeline`.
    _here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if not p or Path(p).resolve() != _here]
    sys.path.insert(0, str(_here.parent))

WIDTH = 100  # the printed tables' notes wrap here


@dataclass(frozen=True)
class Reference:
    """A comparison measured by ``benchmarks/infnet_compare.py`` and recorded in the docs."""

    world: str
    split: str
    training: str
    rows: tuple[tuple[str, str, str], ...]  # (model, AUC-PR, AUC-ROC) as recorded
    finding: str
    command: str
    recorded: str


REFERENCE = Reference(
    world="1,000,000 share records, seed 11, every planted effect on",
    split="test split of 11,449 queries, 14.5 % positive",
    training="3 training seeds (mean ± sd; LR is deterministic, one fit), up to 15 epochs, "
             "patience 5, batch 64",
    rows=(("InfNet", "0.396 ± 0.004", "0.740 ± 0.000"), ("LR", "0.379", "0.731")),
    finding="InfNet ahead of LR in each of the 3 seeds (a 0.017 AUC-PR gap against a 0.004 sd); "
            "the sd is over training seeds on one test split, not over worlds",
    command="python -m jobs.generate_world --lake w1m --share-records 1000000 --seed 11 && "
            "python -m jobs.build_shards --lake w1m --task infnet && "
            "python benchmarks/infnet_compare.py --lake w1m --epochs 15 --patience 5 "
            "--models infnet,infnet_no_edge,infnet_no_user,infnet_no_item,"
            "infnet_no_structural,diffnet,lr,lightgbm",
    recorded="benchmarks/RESULTS.md, section 'InfNet against its baselines and ablations'",
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake", default="lake", help="lake root folder")
    parser.add_argument("--out", default="out", help="report, checkpoints and results")
    parser.add_argument("--share-records", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--models", default="infnet,lr", help="InfNet-task models to train")
    parser.add_argument("--master", default=None, help="Spark master (default: local)")
    return parser.parse_args(argv)


def _step(title: str, argv: list[str]) -> None:
    print(f"\n== {title}\n$ {shlex.join(argv)}", flush=True)


def _run_job(title: str, job, job_args: list[str], master: list[str]) -> int:
    _step(title, ["python", "-m", job.__name__, *job_args, *master])
    code = job.main(job_args + master)
    if code:
        print(f"demo: step '{title}' failed with exit code {code}", file=sys.stderr)
    return code


def _train(args: argparse.Namespace, model: str, out: Path) -> dict | None:
    cmd = [
        sys.executable, "-m", "models.train", "--lake", args.lake, "--task", "infnet",
        "--model", model, "--epochs", str(args.epochs), "--seed", str(args.seed),
        "--out", str(out / "runs" / model),
    ]
    _step(f"train {model}", ["python", *cmd[1:]])
    proc = subprocess.run(cmd, check=False)
    if proc.returncode:
        print(f"demo: training {model} failed ({proc.returncode})", file=sys.stderr)
        return None
    return json.loads((out / "runs" / model / "results.json").read_text())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from jobs import build_shards, generate_world, observe, report

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    master = ["--master", args.master] if args.master else []
    world_args = ["--lake", args.lake, "--share-records", str(args.share_records),
                  "--seed", str(args.seed)]
    for title, job, job_args in (
        ("generate a synthetic Taocode world", generate_world, world_args),
        ("observational statistics", observe, ["--lake", args.lake]),
        ("InfNet training shards", build_shards, ["--lake", args.lake, "--task", "infnet"]),
    ):
        code = _run_job(title, job, job_args, master)
        if code:
            return code

    results = {}
    for model in [m.strip() for m in args.models.split(",") if m.strip()]:
        result = _train(args, model, out)
        if result is None:
            return 1
        results[model] = result

    code = _run_job("report (statistics and model results)", report,
                    ["--lake", args.lake, "--out", str(out / "report")], master)
    if code:
        return code

    print()
    print(comparison_text(results, args.share_records, args.seed, split_sizes(args.lake)))
    print()
    print(reference_text(REFERENCE))
    print(f"\nreport: {(out / 'report' / 'index.html').resolve()}")
    print(f"lake:   {Path(args.lake).resolve()}  (Delta tables: raw/, stats/, shards/, results/)")
    print(f"done in {time.perf_counter() - began:.0f} s")
    return 0


def split_sizes(lake: str) -> dict[str, int]:
    """Queries per split of the lake's InfNet shards, from their manifest."""
    from contracts.infnet import MANIFEST_TABLE
    from pipeline.lake import Lake

    manifest = Lake(lake).to_arrow("shards", MANIFEST_TABLE)
    counts = json.loads(manifest.column("json")[0].as_py()).get("counts", {})
    return {split: sum(int(v) for v in labels.values()) for split, labels in counts.items()}


def comparison_text(
    results: dict[str, dict], share_records: int, seed: int, sizes: dict[str, int]
) -> str:
    """The demo's own comparison: val and test AUC-PR, the test AUC-PR's 95 % interval from the
    split's size, test AUC-ROC, and whether that interval ranks the models."""
    from pipeline.report.results import auc_pr_interval

    if not results:
        return "no models trained"
    test = {m: r["metrics"]["test"] for m, r in results.items()}
    val = {m: r["metrics"].get("val", {}) for m, r in results.items()}
    first = next(iter(test.values()))
    positives = round(first["n"] * first["positive_rate"])
    sizes = {**sizes, "test": int(first["n"])}
    sizes_text = ", ".join(f"{k} {sizes[k]:,}" for k in ("train", "val", "test") if k in sizes)
    lines = [
        "== InfNet task on this demo world: test split, one training seed",
        f"world: {share_records:,} share records, seed {seed}; queries: {sizes_text} "
        f"({positives} positive, {first['positive_rate']:.1%})",
        f"{'model':<10}{'val AUC-PR':>12}{'test AUC-PR':>13}{'95 % interval':>18}"
        f"{'test AUC-ROC':>14}",
    ]
    bounds = {}
    for model, metrics in test.items():
        low, high = auc_pr_interval(metrics["auc_pr"], positives)
        bounds[model] = (metrics["auc_pr"], low, high)
        lines.append(
            f"{model:<10}{val[model].get('auc_pr', float('nan')):>12.3f}"
            f"{metrics['auc_pr']:>13.3f}{f'{low:.3f} - {high:.3f}':>18}"
            f"{metrics['auc_roc']:>14.3f}"
        )
    lines.append(textwrap.fill(
        "95 % interval: what the test split's size alone allows an AUC-PR (logit interval, "
        "Boyd et al. 2013); it leaves out the spread over training seeds.", WIDTH))
    lines.append(textwrap.fill(ranking_sentence(bounds), WIDTH))
    return "\n".join(lines)


def ranking_sentence(bounds: dict[str, tuple[float, float, float]]) -> str:
    """Whether the intervals rank the models: the best is ahead only when its interval lies
    wholly above every other model's. ``bounds``: model -> (AUC-PR, low, high)."""
    if len(bounds) < 2:
        return "one model: nothing to rank."
    best = max(bounds, key=lambda m: bounds[m][0])
    others = [m for m in bounds if m != best]
    if all(bounds[best][1] > bounds[m][2] for m in others):
        return (f"{best} is ahead on this split: its interval lies above "
                f"{', '.join(others)}'s.")
    return ("The intervals overlap: this world is too small to rank the models "
            f"(the higher figure, {best}'s, may be chance); see the reference below.")


def reference_text(reference: Reference) -> str:
    """The recorded comparison on a larger world, with its command and where it is recorded."""
    lines = [
        f"== Reference: InfNet against LR on a larger world ({reference.world})",
        textwrap.fill(f"{reference.split}; {reference.training}", WIDTH),
        f"{'model':<10}{'AUC-PR':>16}{'AUC-ROC':>16}",
        *(f"{model:<10}{pr:>16}{roc:>16}" for model, pr, roc in reference.rows),
        textwrap.fill(f"finding: {reference.finding}", WIDTH),
        f"measured by: {reference.command}",
        f"recorded in: {reference.recorded}",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
