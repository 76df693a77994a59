"""The example Prometheus configuration and alert rules of docs/prometheus/
are what promtool (Debian's `prometheus` package; required with CI=true)
accepts, and they use only metrics the service exposes."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml  # type: ignore[import-untyped]

from app.infra.metrics import Metrics
from tests.conftest import IN_CI, ROOT

DOCS = ROOT / "docs" / "prometheus"


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if IN_CI:
            pytest.fail("promtool is missing (apt-get install prometheus); CI=true requires it")
        pytest.skip("promtool not installed (apt-get install prometheus)")
    return found


def check(*args: str, cwd: Path) -> None:
    done = subprocess.run([promtool(), "check", *args], cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_alert_rules_pass_promtool() -> None:
    check("rules", "alerts.yml", cwd=DOCS)


def test_the_scrape_config_passes_promtool_with_its_rules(tmp_path: Path) -> None:
    for name in ("prometheus.yml", "alerts.yml"):
        shutil.copy(DOCS / name, tmp_path / name)
    (tmp_path / "metrics-token").write_text("a-metrics-token-0123456789\n")  # the operator's
    check("config", "prometheus.yml", cwd=tmp_path)


def test_the_rules_use_only_metrics_the_service_exposes() -> None:
    suffixes = {"counter": ["_total"], "gauge": [""], "histogram": ["_bucket", "_count", "_sum"]}
    exposed = {
        family.name + suffix
        for family in Metrics().registry.collect()
        for suffix in suffixes[family.type]
    }
    rules = yaml.safe_load((DOCS / "alerts.yml").read_text())["groups"][0]["rules"]
    used = {
        name
        for rule in rules
        for name in re.findall(r"\b([a-z_]+(?:_total|_seconds_\w+|_depth))\b", rule["expr"])
    }
    assert used, "no metric found in the rules: the pattern is wrong"
    assert used <= exposed, used - exposed


def test_the_operations_guide_names_each_alert() -> None:
    guide = (ROOT / "docs" / "operations.md").read_text()
    rules = yaml.safe_load((DOCS / "alerts.yml").read_text())["groups"][0]["rules"]
    assert len(rules) == 3
    for rule in rules:
        assert rule["alert"] in guide
