"""`cluster:` in the config and `serve --workers` (docs/cluster.md, docs/config.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT, make_config
from ussd import cli
from ussd.config import ClusterConfig, ConfigError

REDIS = "redis://127.0.0.1:6379/0"
POSTGRES = "postgresql://ussd@127.0.0.1:5432/ussd"


def test_unset_is_the_embedded_gateway() -> None:
    assert make_config().cluster == ClusterConfig() and not make_config().cluster.enabled


def test_a_cluster_section() -> None:
    cluster = make_config(cluster={"redis": REDIS, "postgres": POSTGRES, "worker": "a-1"}).cluster
    assert cluster == ClusterConfig(REDIS, POSTGRES, "a-1") and cluster.enabled


@pytest.mark.parametrize(
    ("section", "key", "message"),
    [
        ({"postgres": POSTGRES}, "cluster.redis", "expected a redis:// URL"),
        ({"redis": "http://x", "postgres": POSTGRES}, "cluster.redis", "expected a redis://"),
        ({"redis": REDIS}, "cluster.postgres", "expected a postgresql:// DSN"),
        ({"redis": REDIS, "postgres": "var/x.sqlite3"}, "cluster.postgres", "postgresql://"),
        ({"redis": REDIS, "postgres": POSTGRES, "worker": "a b"}, "cluster.worker", "1-64"),
        ({"redis": REDIS, "postgres": POSTGRES, "worker": "w" * 65}, "cluster.worker", "at most"),
        ({"redis": REDIS, "postgres": POSTGRES, "workers": 2}, "cluster.workers", "unknown key"),
        ({"redis": 5, "postgres": POSTGRES}, "cluster.redis", "expected a redis://"),
        ("redis://x", "cluster", "expected a mapping"),
    ],
)
def test_bad_cluster_sections(section: Any, key: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        make_config(cluster=section)
    assert info.value.key == key and message in str(info.value)


def _config_file(tmp_path: Path, **sections: Any) -> str:
    data = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    data.update(sections)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return str(path)


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        ({}, "--workers needs cluster mode"),
        (
            {
                "cluster": {"redis": REDIS, "postgres": POSTGRES},
                "http": {"listen": "127.0.0.1:0"},
            },
            "--workers shares fixed ports",
        ),
    ],
)
def test_workers_refused_without_what_they_need(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], sections: dict[str, Any], message: str
) -> None:
    config = _config_file(tmp_path, **sections)
    assert cli.main(["serve", "--config", config, "--workers", "2"]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("workers", ["0", "65", "two"])
def test_workers_is_a_small_number(workers: str) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["serve", "--workers", workers])
    assert info.value.code == 2


@pytest.mark.parametrize("missing", ["postgres", "redis"])
def test_a_server_that_cannot_be_reached_stops_start_up(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    missing: str,
    request: pytest.FixtureRequest,
) -> None:
    postgres = "postgresql://ussd:pw@127.0.0.1:1/x"
    if missing == "redis":
        postgres = request.getfixturevalue("postgres_url")
    cluster = {"redis": "redis://127.0.0.1:1/0", "postgres": postgres}
    listen = {"listen": "127.0.0.1:0"}
    config = _config_file(tmp_path, cluster=cluster, http=listen, smpp=listen)
    assert cli.main(["serve", "--config", config]) == 2
    err = capsys.readouterr().err
    assert f"configuration error: cluster.{missing}:" in err and "pw" not in err
    assert len(err.strip().splitlines()) == 1
