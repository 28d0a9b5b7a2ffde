"""PSI, threshold checks, and alerts as log event, Prometheus metric and audit record."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from nudge_engine.monitoring.alerts import AlertSink, alert_event
from nudge_engine.monitoring.checks import Status, evaluate
from nudge_engine.monitoring.psi import psi
from nudge_engine.monitoring.settings import MonitorSettings
from nudge_engine.monitoring.snapshot import MonitorSnapshot, Rate, Windows

NOW = datetime(2026, 12, 15, 12, 0, tzinfo=UTC)
RNG = np.random.default_rng(3)


def snapshot(**changes: object) -> MonitorSnapshot:
    days = [date(2026, 12, 1) + timedelta(days=i) for i in range(14)]
    snap = MonitorSnapshot(Windows(NOW, NOW - timedelta(days=7), NOW - timedelta(days=14)), days=days,
                           patients_built=[1000] * 14)
    same = RNG.gamma(2.0, 10.0, 2000)
    snap.features = {"activity_minutes_per_day": (same[:1000], same[1000:])}
    snap.scores = (RNG.normal(0.3, 0.1, 1000), RNG.normal(0.3, 0.1, 1000))
    snap.blocked_by_rule = {"EX-03": [50] * 14}
    snap.rates = {"open": (Rate(500, 1000), Rate(480, 1000))}
    snap.eligible_patients, snap.starved_patients = 900, 10
    snap.last_context_update, snap.last_event = NOW - timedelta(days=2), NOW - timedelta(hours=1)
    for key, value in changes.items():
        setattr(snap, key, value)
    return snap


def by_check(findings: list, check: str) -> list:  # type: ignore[type-arg]
    return [f for f in findings if f.check == check]


def test_psi_is_near_zero_for_the_same_distribution_and_large_for_a_shifted_one() -> None:
    ref = RNG.normal(0, 1, 5000)
    assert psi(ref, RNG.normal(0, 1, 5000)) < 0.02
    assert psi(ref, RNG.normal(1.0, 1, 5000)) > 0.25


def test_a_quiet_snapshot_raises_no_alert() -> None:
    assert [f for f in evaluate(snapshot(), MonitorSettings()) if f.alerting] == []


def test_feature_drift_over_the_psi_threshold_alerts() -> None:
    ref = RNG.gamma(2.0, 10.0, 1000)
    snap = snapshot(features={"activity_minutes_per_day": (ref, 2.5 * RNG.gamma(2.0, 10.0, 1000))})
    [finding] = by_check(evaluate(snap, MonitorSettings()), "feature_psi")
    assert finding.status is Status.ALERT and finding.subject == "activity_minutes_per_day"


def test_a_rule_that_suddenly_blocks_three_times_as_often_alerts() -> None:
    snap = snapshot(blocked_by_rule={"EX-03": [50] * 7 + [150] * 7})
    [finding] = by_check(evaluate(snap, MonitorSettings()), "block_rate")
    assert finding.alerting and finding.value == pytest.approx(0.15) and finding.reference == pytest.approx(0.05)


def test_a_rule_firing_for_fewer_patients_than_the_minimum_cell_is_suppressed() -> None:
    snap = snapshot(blocked_by_rule={"EX-03": [0] * 7 + [1] * 7})
    [finding] = by_check(evaluate(snap, MonitorSettings()), "block_rate")
    assert finding.status is Status.SUPPRESSED


def test_stale_events_starved_patients_and_a_collapsed_open_rate_alert() -> None:
    snap = snapshot(last_event=NOW - timedelta(hours=30), starved_patients=300,
                    rates={"open": (Rate(500, 1000), Rate(100, 1000))})
    alerting = {f.check for f in evaluate(snap, MonitorSettings()) if f.alerting}
    assert alerting == {"event_freshness", "starved_share", "open_rate"}


def test_thresholds_come_from_nudge_monitor_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NUDGE_MONITOR_PSI_ALERT", "0.4")
    monkeypatch.setenv("NUDGE_MONITOR_MIN_CELL", "20")
    settings = MonitorSettings()
    assert settings.psi_alert == 0.4 and settings.min_cell == 20


def test_an_alert_sets_prometheus_metrics_and_makes_a_valid_audit_event() -> None:
    registry = CollectorRegistry()
    sink = AlertSink(registry)
    snap = snapshot(last_event=NOW - timedelta(hours=30))
    raised = sink.emit(evaluate(snap, MonitorSettings()), session=None, audit=None, now=NOW, window_days=7)
    assert [f.check for f in raised] == ["event_freshness"]
    text = generate_latest(registry).decode()
    assert 'nudge_monitor_alerts_total{check="event_freshness"} 1.0' in text
    assert 'nudge_monitor_alert_active{check="event_freshness",subject="hours_since_last"} 1.0' in text
    event = alert_event(raised[0], window_days=7)
    assert event.event_type == "alert_raised"
    assert event.details["value_milli"] == 30_000 and event.details["check"] == "event_freshness"
