"""The monitoring files under cluster/monitoring, checked without Prometheus or Grafana.

promtool is not on PyPI, so PromQL is parsed by ``promql-parser`` (Python bindings of the
Rust parser GreptimeDB uses); the rest are structural checks. Every metric an alert or a
panel reads must be one the code defines: ours from ``matchday.metrics.SPECS``, Serve's
read from the installed Ray itself, so a rename on either side fails here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml

from matchday.domain.errors import InvalidInput, MatchdayError, OutOfStock
from matchday.inventory.commands import Expire, Outcome, ReservationView, Reserve, StockView
from matchday.inventory.wire import WireMutation, WireOutcome, outcome_to_wire, to_wire
from matchday.metrics import (
    EXPIRIES,
    MUTATIONS,
    OVERSELL_REFUSED,
    PAYMENTS,
    RESERVATIONS,
    SELLOUTS,
    SPECS,
    DeltaExporter,
    MemoryMetrics,
    exported_names,
    record_batch,
)

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "cluster" / "monitoring"
RUNBOOK = ROOT / "docs" / "ops" / "monitoring.md"

# Grafana's built-in variables, replaced by what Grafana would put there before parsing.
GRAFANA_VARS = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h"}
SEVERITIES = {"critical", "warning", "info"}
# Labels Ray's exporter adds to every series (seen on a 2.60 endpoint), plus histograms' le.
RAY_LABELS = {"Component", "NodeAddress", "SessionName", "Version", "WorkerId", "job", "le"}


def serve_metrics() -> dict[str, set[str]]:
    """Ray Serve's metrics this repo reads: exported name -> tag keys, from Ray's own code."""
    from ray.serve._private.common import RequestProtocol
    from ray.serve._private.request_ingress_metrics import RequestIngressMetrics

    ingress = RequestIngressMetrics(
        RequestProtocol.HTTP, source="proxy", node_id="n", node_ip_address="127.0.0.1"
    )
    out: dict[str, set[str]] = {}
    for metric in vars(ingress).values():
        name, kind = "ray_" + metric._name, type(metric).__name__
        suffixes = {"Counter": ["_total"], "Histogram": ["_bucket", "_sum", "_count"]}
        for suffix in suffixes.get(kind, [""]):
            out[name + suffix] = set(metric._tag_keys)
    # The router's queue gauge (ray/serve/_private/router.py), by hand: it is built inside
    # a router object that needs a running controller.
    out["ray_serve_deployment_queued_queries"] = {"deployment", "application", "handle"}
    return out


def known_metrics() -> dict[str, set[str]]:
    ours = {name: set(spec.tag_keys) for spec in SPECS for name in spec.exported()}
    return {**serve_metrics(), **ours}


def selectors(expr: str) -> list[promql_parser.VectorSelector]:
    for var, value in GRAFANA_VARS.items():
        expr = expr.replace(var, value)
    found: list[promql_parser.VectorSelector] = []

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            found.append(node)

    promql_parser.walk(promql_parser.parse(expr), pre_visit=visit)
    return found


def check_expr(expr: str, where: str) -> set[str]:
    """Parse ``expr``; every selector names a known metric and only its labels."""
    known = known_metrics()
    try:
        sels = selectors(expr)
    except ValueError as exc:
        pytest.fail(f"{where}: PromQL does not parse: {exc}\n{expr}")
    assert sels, f"{where}: reads no metric"
    for sel in sels:
        assert sel.name in known, f"{where}: {sel.name} is defined nowhere"
        for m in sel.matchers.matchers:
            assert m.name in known[sel.name] | RAY_LABELS, f"{where}: {sel.name} has no {m.name}"
    return {s.name for s in sels if s.name}


def rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load((MONITORING / "prometheus-alerts.yml").read_text())
    assert set(doc) == {"groups"}
    out = []
    for group in doc["groups"]:
        assert group["name"] and group["rules"], group
        out.extend(group["rules"])
    return out


def dashboard() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    return doc


def anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    heads = re.findall(r"^#+\s+(.+)$", markdown, flags=re.M)
    return {re.sub(r"[^a-z0-9 _-]", "", h.strip().lower()).replace(" ", "-") for h in heads}


# -- alert rules -------------------------------------------------------------------------


def test_every_alert_has_a_parsable_expression_over_defined_metrics() -> None:
    for rule in rules():
        check_expr(rule["expr"], rule["alert"])


def test_every_alert_is_named_once_has_a_severity_and_says_what_to_do() -> None:
    names = [r["alert"] for r in rules()]
    assert len(names) == len(set(names))
    runbook = anchors(RUNBOOK.read_text())
    for rule in rules():
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert rule["labels"]["severity"] in SEVERITIES, rule["alert"]
        notes = rule["annotations"]
        assert notes["summary"] and notes["description"], rule["alert"]
        assert notes["runbook"].split("#")[1] in runbook, f"{rule['alert']}: no runbook section"
        for text in notes.values():
            assert text.count("{{") == text.count("}}"), rule["alert"]
        if "for" in rule:
            assert promql_parser.parse_duration(rule["for"]).total_seconds() > 0


def test_the_alerts_cover_what_on_call_is_paged_for() -> None:
    read = set().union(*(check_expr(r["expr"], r["alert"]) for r in rules()))
    assert {
        "ray_matchday_pinned_available",  # low stock
        "ray_serve_num_http_error_requests_total",  # error rate
        "ray_serve_http_request_latency_ms_bucket",  # p99
        "ray_matchday_payments_total",  # gateway failure rate
        "ray_matchday_shard_starts_total",  # shard restarts
        "ray_matchday_outbox_backlog",
    } <= read


# -- dashboard ---------------------------------------------------------------------------


def test_every_dashboard_panel_queries_defined_metrics_in_parsable_promql() -> None:
    for panel in dashboard()["panels"]:
        for target in panel["targets"]:
            check_expr(target["expr"], f"panel {panel['title']!r} {target['refId']}")


def test_the_dashboard_is_well_formed_for_grafana() -> None:
    dash = dashboard()
    assert dash["uid"] and dash["title"] and dash["schemaVersion"] >= 30
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dash["panels"]:
        assert panel["type"] in {"timeseries", "stat", "gauge", "table"}, panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), panel["title"]


def test_the_dashboard_shows_every_business_metric() -> None:
    read = {
        name
        for panel in dashboard()["panels"]
        for t in panel["targets"]
        for name in check_expr(t["expr"], panel["title"])
    }
    for spec in SPECS:
        assert set(spec.exported()) & read, f"{spec.name} is on no panel"
    assert "ray_serve_num_http_requests_total" in read


# -- scrape config -----------------------------------------------------------------------


def test_prometheus_scrapes_ray_from_its_service_discovery_file_and_loads_the_rules() -> None:
    from ray._private.ray_constants import PROMETHEUS_SERVICE_DISCOVERY_FILE

    conf = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    for rule_file in conf["rule_files"]:
        assert (MONITORING / rule_file).is_file()
    (job,) = [j for j in conf["scrape_configs"] if j["job_name"] == "ray"]
    files = [f for sd in job["file_sd_configs"] for f in sd["files"]]
    assert files and all(f.endswith("/" + PROMETHEUS_SERVICE_DISCOVERY_FILE) for f in files)


# -- the registry and what a batch records -----------------------------------------------


def test_metric_names_are_valid_for_ray_and_unique() -> None:
    from ray.util.metrics import _VALID_METRIC_NAME_RE  # what Ray silently discards

    assert len({s.name for s in SPECS}) == len(SPECS)
    assert len(exported_names()) == sum(len(s.exported()) for s in SPECS)
    for spec in SPECS:
        assert _VALID_METRIC_NAME_RE.match(spec.name) and spec.name.startswith("matchday_")
        assert spec.description and (spec.kind == "histogram") == bool(spec.boundaries)


def reserve(sku: str, qty: int) -> WireMutation:
    return to_wire(Reserve(f"rq-{sku}-{qty}", sku, qty, "cart", "fan", 60))


def held(sku: str) -> WireOutcome:
    return outcome_to_wire(
        Outcome(value=ReservationView("r-1", sku, 1, "cart", "fan", 0.0, "held"))
    )


def refused(error: MatchdayError) -> WireOutcome:
    return outcome_to_wire(Outcome(error=error))


def test_a_batch_records_reservations_refusals_expiries_and_sell_outs() -> None:
    m = MemoryMetrics()
    batch = [
        reserve("A", 1),
        reserve("A", 5),
        reserve("B", 0),
        to_wire(Expire("x1", "C", "r-9")),
        to_wire(Expire("x2", "C", "r-8")),
        ("forged",),  # malformed: counted as invalid, never a crash
    ]
    outcomes = [
        held("A"),
        refused(OutOfStock("A", 5, 0)),
        refused(InvalidInput("qty", "bad")),
        outcome_to_wire(
            Outcome(value=ReservationView("r-9", "C", 1, "cart", "fan", 0.0, "expired"))
        ),
        outcome_to_wire(Outcome(value=StockView("C", 5, 0, 0, 5))),  # no longer applied
        refused(InvalidInput("kind", "unknown mutation tuple")),
    ]
    record_batch(m, 3, batch, outcomes, before={"A": 1, "C": 4}, after={"A": 0, "C": 5})
    assert m.count(RESERVATIONS, shard="3", outcome="ok") == 1
    assert m.count(RESERVATIONS, outcome="refused", code="out_of_stock") == 1
    assert m.count(RESERVATIONS, outcome="refused", code="invalid_input") == 1
    assert m.count(MUTATIONS, kind="invalid", code="invalid_input") == 1
    assert m.count(OVERSELL_REFUSED, shard="3") == 1
    assert m.count(EXPIRIES) == 1
    assert m.count(SELLOUTS) == 1


def test_a_refused_reserve_on_an_empty_sku_or_a_failed_write_is_not_a_sell_out() -> None:
    m = MemoryMetrics()
    record_batch(
        m, 0, [reserve("A", 1)], [refused(OutOfStock("A", 1, 0))], {}, {"A": 0}
    )  # loaded by this batch, already empty
    record_batch(m, 0, [reserve("B", 1)], [refused(InvalidInput("x", "y"))], {"B": 1}, {})
    assert m.count(SELLOUTS) == 0


def test_recording_with_the_wrong_tags_fails_in_a_unit_test_not_in_a_shard() -> None:
    m = MemoryMetrics()
    with pytest.raises(ValueError):
        m.inc(SELLOUTS, tags={"sku": "A"})
    with pytest.raises(TypeError):
        m.set(SELLOUTS, 1, {"shard": "0"})
    with pytest.raises(KeyError):
        m.inc("matchday_nothing")


def test_cumulative_counters_are_exported_as_increments_and_survive_a_reset() -> None:
    m = MemoryMetrics()
    exporter = DeltaExporter(m, PAYMENTS)
    tags = {"gateway": "stripe", "region": "eu", "outcome": "succeeded"}
    exporter.export([(tags, 3)])
    exporter.export([(tags, 3)])
    exporter.export([(tags, 5)])
    exporter.export([(tags, 1)])  # the router was rebuilt: counts from zero again
    assert m.count(PAYMENTS, gateway="stripe") == 6


def test_a_channels_reserves_count_as_reservations_and_its_refusals_by_code() -> None:
    from matchday.domain.errors import AllocationExceeded
    from matchday.inventory.commands import ChannelReserve

    m = MemoryMetrics()
    batch = [
        to_wire(ChannelReserve("c1", "A", 1, "o-1", "b-1", 300.0, "ebay")),
        to_wire(ChannelReserve("c2", "A", 2, "o-2", "b-2", 300.0, "ebay")),
    ]
    outcomes = [held("A"), refused(AllocationExceeded("A", "ebay", 2, 0))]
    record_batch(m, 1, batch, outcomes, before={"A": 3}, after={"A": 2})
    assert m.count(RESERVATIONS, shard="1", outcome="ok") == 1
    assert m.count(RESERVATIONS, outcome="refused", code="allocation_exceeded") == 1
    assert m.count(MUTATIONS, kind="channel_reserve", code="ok") == 1


def test_a_batch_with_no_refusal_counts_as_one_looked_at_mutation_by_mutation() -> None:
    from matchday import metrics as monitoring

    batch = [
        reserve("A", 1),
        reserve("A", 2),
        reserve("B", 1),
        to_wire(Expire("x1", "C", "r-9")),
        to_wire(Expire("x2", "C", "r-8")),
    ]
    outcomes = [
        held("A"),
        held("A"),
        held("B"),
        outcome_to_wire(
            Outcome(value=ReservationView("r-9", "C", 1, "cart", "fan", 0.0, "expired"))
        ),
        outcome_to_wire(Outcome(value=StockView("C", 5, 0, 0, 5))),  # no longer applied
    ]
    before, after = {"A": 3, "B": 0, "C": 4}, {"A": 0, "B": 0, "C": 5}
    fast, slow = MemoryMetrics(), MemoryMetrics()
    record_batch(fast, 2, batch, outcomes, before, after)
    took = monitoring._record_refusals(slow, "2", batch, outcomes)()
    assert took == {"A", "B"}
    slow.inc(SELLOUTS, 1, {"shard": "2"})  # A: taken from 3 to 0; B was empty before
    assert fast.counters == slow.counters
    assert fast.count(RESERVATIONS, outcome="ok") == 3
    assert fast.count(EXPIRIES) == 1
    assert fast.count(SELLOUTS) == 1
    with pytest.raises(ValueError):
        record_batch(fast, 2, batch, outcomes[:-1], before, after)
