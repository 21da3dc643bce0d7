"""The demo's closing tables: its own figures with what the test split's size allows them, and
the reference comparison exactly as recorded with its command."""

from __future__ import annotations

from pathlib import Path

from jobs.demo import REFERENCE, comparison_text, ranking_sentence, reference_text

ROOT = Path(__file__).resolve().parents[2]


def _results(auc_pr: float, auc_roc: float, val_auc_pr: float, n: float = 2000.0,
             positive_rate: float = 0.15) -> dict:
    test = {"auc_pr": auc_pr, "auc_roc": auc_roc, "n": n, "positive_rate": positive_rate}
    return {"metrics": {"val": {"auc_pr": val_auc_pr}, "test": test}}


def test_overlapping_intervals_do_not_rank():
    # 2000 x 0.15 = 300 positives. AUC-PR 0.30: logit -0.8473, half width on the logit scale
    # 1.96 / sqrt(300 x 0.3 x 0.7) = 0.2469 -> expit(-1.0942), expit(-0.6004) = 0.251 - 0.354;
    # 0.32: logit -0.7538, half width 0.2426 -> 0.270 - 0.375
    text = comparison_text(
        {"infnet": _results(0.30, 0.66, 0.33), "lr": _results(0.32, 0.68, 0.34)},
        200_000, 7, {"train": 3000, "val": 1200, "test": 2000},
    )
    lines = text.splitlines()
    assert "test split, one training seed" in lines[0]
    assert lines[1] == ("world: 200,000 share records, seed 7; queries: train 3,000, val 1,200, "
                        "test 2,000 (300 positive, 15.0%)")
    infnet = next(line for line in lines if line.startswith("infnet")).split()
    assert infnet == ["infnet", "0.330", "0.300", "0.251", "-", "0.354", "0.660"]
    lr = next(line for line in lines if line.startswith("lr")).split()
    assert lr == ["lr", "0.340", "0.320", "0.270", "-", "0.375", "0.680"]
    joined = " ".join(lines)
    assert "this world is too small to rank the models" in joined
    assert "lr's, may be chance" in joined


def test_intervals_apart_name_the_leader():
    assert ranking_sentence({"infnet": (0.40, 0.36, 0.44), "lr": (0.30, 0.27, 0.34)}) == (
        "infnet is ahead on this split: its interval lies above lr's.")
    # touching is not apart
    assert "too small" in ranking_sentence(
        {"infnet": (0.40, 0.34, 0.44), "lr": (0.30, 0.27, 0.34)})
    assert ranking_sentence({"lr": (0.3, 0.2, 0.4)}) == "one model: nothing to rank."


def _recorded_rows(text: str) -> dict[str, list[str]]:
    """Markdown table rows of the recorded infnet_compare figures: first cell -> other cells,
    bold markers dropped."""
    rows = {}
    for line in text.splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            cells = [c.strip().replace("**", "") for c in line.strip().strip("|").split("|")]
            rows[cells[0]] = cells[1:]
    return rows


def test_reference_is_the_recorded_benchmark():
    recorded = (ROOT / "benchmarks" / "RESULTS.md").read_text()
    # the section the reference quotes (other sections have InfNet rows of other worlds)
    section = recorded.split("## InfNet against its baselines and ablations", 1)[1]
    rows = _recorded_rows(section.split("\n## ", 1)[0])
    for model, auc_pr, auc_roc in REFERENCE.rows:
        assert rows[model][:2] == [auc_pr, auc_roc], model
    for command in REFERENCE.command.split(" && "):
        assert command in " ".join(recorded.replace("\\\n", " ").split()), command
    assert "11,449" in recorded and "14.5 %" in recorded
    text = reference_text(REFERENCE)
    assert "InfNet       0.396 ± 0.004   0.740 ± 0.000" in text
    assert f"measured by: {REFERENCE.command}" in text
    assert "recorded in: benchmarks/RESULTS.md" in text
