"""The drop run's report (loadtests/drop_report.py): units and shares per side, the rank
correlation between arrival and admission, and latency and errors from Locust's CSV."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadtests.drop_report import main, ranks, report, spearman


def test_ranks_share_ties_and_spearman_reads_order_only() -> None:
    assert ranks([3.0, 1.0, 3.0, 2.0]) == [3.5, 1.0, 3.5, 2.0]
    assert spearman([1, 2, 3, 4], [10, 20, 30, 400]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1.0], [2.0]) is None


def test_the_report_compares_the_two_sides(tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    journal.mkdir()
    entries = [
        {"persona": "fan", "side": "queued", "joined": 1.0, "admitted": 5.0, "units": 1},
        {"persona": "fan", "side": "queued", "joined": 2.0, "admitted": 6.0, "units": 1},
        {"persona": "fan", "side": "queued", "joined": 3.0, "admitted": None, "units": 0},
        {"persona": "bot", "side": "queued", "joined": 0.5, "admitted": 9.0, "units": 2},
        {"persona": "fan", "side": "open", "joined": 1.0, "admitted": None, "units": 1},
        {"persona": "bot", "side": "open", "joined": 1.0, "admitted": None, "units": 2},
        {"persona": "bot", "side": "open", "joined": 1.5, "admitted": None, "units": 2},
        {"persona": "bot", "side": "open", "joined": 1.6, "admitted": None, "units": 2},
        {"persona": "bot", "side": "open", "joined": 1.7, "admitted": None, "units": 2},
    ]
    (journal / "journal-1.jsonl").write_text("".join(json.dumps(e) + "\n" for e in entries))
    stats = tmp_path / "drop_stats.csv"
    stats.write_text(
        "Type,Name,Request Count,Failure Count,99%\n"
        "POST,admitted: add,10,0,120\nPOST,admitted: checkout,10,1,250\n"
        "GET,queue: status,100,0,40\nPOST,open: add,50,5,900\nGET,Aggregated,170,6,800\n"
        "GET,throttled: queue status,300,0,3\n"
    )
    assert main([str(journal), str(stats)]) == 0
    from loadtests.drop_report import latency, read_journal

    result = report(read_journal(journal), latency(stats))
    assert result["units"] == {"queue_on": {"fan": 2, "bot": 2}, "queue_off": {"fan": 1, "bot": 8}}
    assert result["bot_share"] == {"queue_on": 0.5, "queue_off": pytest.approx(8 / 9)}
    assert result["bot_units_on_vs_off"] == 0.25
    assert result["fairness_spearman"] == pytest.approx(1.0)
    assert result["requests"]["admitted"] == {
        "requests": 20, "failures": 1, "p99_ms": 250.0, "error_rate": 0.05,
    }  # fmt: skip
    assert result["requests"]["open"]["error_rate"] == 0.1
    # Polls the ingress refused by design are apart from the queue's own requests.
    assert result["requests"]["queue"]["requests"] == 100
    assert result["requests"]["throttled"]["requests"] == 300


def test_the_load_test_solves_challenges_as_the_shop_checks_them() -> None:
    from loadtests.pow import solve
    from matchday.waitingroom import tokens

    t = tokens.Tokens("k" * 40)
    c = t.challenge("d_aaaaaaaaaaaaaaaa", "u_fan", 10, 1_800_000_000.0)
    t.check_work(c, solve(c, 10), "d_aaaaaaaaaaaaaaaa", "u_fan", 10, 1_800_000_000.0)
