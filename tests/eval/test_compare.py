"""The paired comparison of two eval runs: counts, the exact test, and refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vidora.cli import app
from vidora.eval.compare import compare_runs, mcnemar_p


def _run(folder: Path, right: list[bool], split: str = "eval-seen", prompt: str = "p") -> Path:
    folder.mkdir()
    with open(folder / f"verdicts_{split}.jsonl", "w", encoding="utf-8") as file:
        for index, adheres in enumerate(right):
            row = {"split": split, "seed": 0, "index": index, "prompt": f"{prompt}{index}"}
            file.write(json.dumps({**row, "verdict": {"adheres": adheres}}) + "\n")
    return folder


def test_mcnemar_p_against_the_binomial_by_hand() -> None:
    assert mcnemar_p(0, 0) == 1.0
    assert mcnemar_p(10, 0) == pytest.approx(2 / 2**10)  # all ten discordant prompts one way
    assert mcnemar_p(3, 1) == pytest.approx(2 * (1 + 4) / 16)  # P(X <= 1) for X ~ B(4, 1/2)
    assert mcnemar_p(5, 5) == 1.0


def test_counts_pair_prompt_by_prompt(tmp_path: Path) -> None:
    a = _run(tmp_path / "a", [True] * 30 + [True] * 12 + [False] * 58)
    b = _run(tmp_path / "b", [True] * 30 + [False] * 12 + [False] * 50 + [True] * 8)
    report = compare_runs(a, b, resamples=2000)
    for split in ("eval-seen", "all"):
        r = report["splits"][split]
        assert (r["a_right"], r["b_right"], r["both_right"]) == (42, 38, 30)
        assert (r["only_a"], r["only_b"], r["difference"]) == (12, 8, 4)
        assert r["mcnemar_p"] == pytest.approx(mcnemar_p(12, 8))
        # 20 discordant prompts of 100: the difference's spread is about sqrt(20) = 4.5.
        assert 3.5 < r["difference_sd"] < 5.5
        assert r["difference_95"][0] < 4 < r["difference_95"][1]


def test_identical_runs_differ_by_nothing(tmp_path: Path) -> None:
    right = [i % 3 == 0 for i in range(60)]
    report = compare_runs(_run(tmp_path / "a", right), _run(tmp_path / "b", right))
    r = report["splits"]["all"]
    assert (r["difference"], r["difference_sd"], r["mcnemar_p"]) == (0, 0.0, 1.0)


def test_runs_of_other_prompts_are_refused(tmp_path: Path) -> None:
    a = _run(tmp_path / "a", [True, False])
    b = _run(tmp_path / "b", [True, False], prompt="q")
    with pytest.raises(ValueError, match="different prompts"):
        compare_runs(a, b)
    c = _run(tmp_path / "c", [True], split="eval-wording")
    with pytest.raises(ValueError, match="no prompt in common"):
        compare_runs(a, c)


def test_cli_prints_and_writes_the_report(tmp_path: Path) -> None:
    a = _run(tmp_path / "a", [True, True, False])
    b = _run(tmp_path / "b", [True, False, False])
    out = tmp_path / "compare.json"
    result = CliRunner().invoke(app, ["eval-compare", str(a), str(b), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["splits"]["all"]["only_a"] == 1
    missing = CliRunner().invoke(app, ["eval-compare", str(a), str(tmp_path / "none")])
    message = " ".join(missing.output.replace("│", " ").split())  # the error box, unwrapped
    assert missing.exit_code == 2 and "holds no verdicts_<split>.jsonl" in message
