"""Labelled series that alerts watch exist at 0 before their first use."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client import generate_latest

from slaclock.processors.live.metrics import REJECTION_REASONS, UNTRACKED_REASONS, Metrics
from slaclock.processors.notify.app import Metrics as NotifyMetrics

ROOT = Path(__file__).resolve().parents[2]


def test_worker_rejection_and_untracked_series_start_at_zero() -> None:
    text = generate_latest(Metrics().registry).decode()
    assert 'slaclock_rejected_total{reason="UnknownTicket"} 0.0' in text
    assert 'slaclock_rejected_total{reason="SchemaViolation"} 0.0' in text
    assert 'slaclock_untracked_tickets_total{reason="no_contract"} 0.0' in text
    assert 'slaclock_untracked_tickets_total{reason="no_target"} 0.0' in text


def test_every_rejection_class_in_the_code_has_its_series() -> None:
    raised: set[str] = {"NaiveTimestamp", "SchemaViolation"}  # classify_validation_error
    for folder in ("processors", "schemas"):
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            raised |= set(re.findall(r'Rejected\(\s*"([A-Za-z]+)"', text))
    assert raised <= set(REJECTION_REASONS)
    assert set(UNTRACKED_REASONS) == {"no_contract", "no_target"}


def test_notify_target_series_start_at_zero() -> None:
    text = generate_latest(NotifyMetrics(["pager", "hook"]).registry).decode()
    for target in ("pager", "hook"):
        assert f'slaclock_notify_retrying{{target="{target}"}} 0.0' in text
        assert f'slaclock_notify_dead_lettered_total{{target="{target}"}} 0.0' in text
        assert f'slaclock_notify_delivered_total{{target="{target}"}} 0.0' in text
