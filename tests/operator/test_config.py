"""Config: sources (default, file, env, flag), refusals naming the key, docs in step."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chain.crypto import KeyPair
from cli import main as cli
from node.config import (
    CONFIG_FILE,
    NodeConfig,
    NodeHome,
    init_home,
    load_config,
    load_config_with_sources,
    render_settings_table,
)
from node.errors import ConfigError
from tests.node.conftest import make_genesis

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    init_home(path, make_genesis([KeyPair.from_seed(b"\x01" * 32)]).to_json(),
              NodeConfig(moniker="m1", rpc_listen="127.0.0.1:9000"), None)
    return path


def test_sources_rise_from_default_to_file_env_flag(home: Path) -> None:
    config, sources = load_config_with_sources(
        home, env={"GOVCHAIN_LOG_LEVEL": "DEBUG", "GOVCHAIN_PEERS": "a:1, b:2",
                   "GOVCHAIN_MAX_BLOCKS_BEHIND": "5", "GOVCHAIN_MONIKER": "from-env"},
        overrides={"moniker": "from-flag", "metrics_enabled": "false"})
    assert (config.rpc_listen, sources["rpc_listen"]) == ("127.0.0.1:9000", "file")
    assert (config.mempool_max_txs, sources["mempool_max_txs"]) == (100_000, "default")
    assert (config.log_level, sources["log_level"]) == ("DEBUG", "env")
    assert (config.peers, sources["peers"]) == (["a:1", "b:2"], "env")
    assert (config.max_blocks_behind, sources["max_blocks_behind"]) == (5, "env")
    assert (config.moniker, sources["moniker"]) == ("from-flag", "flag")
    assert (config.metrics_enabled, sources["metrics_enabled"]) == (False, "flag")


def test_other_govchain_env_variables_are_not_config_keys(home: Path) -> None:
    config = load_config(home, env={"GOVCHAIN_KEY_PASSPHRASE": "x", "GOVCHAIN_FOO": "1"})
    assert config.moniker == "m1"


@pytest.mark.parametrize(("line", "key"), [
    ("colour = 'blue'", "colour"),
    ("mempool_max_txs = 'many'", "mempool_max_txs"),
    ("mempool_max_txs = 0", "mempool_max_txs"),
    ("log_level = 'LOUD'", "log_level"),
    ("log_format = 'xml'", "log_format"),
    ("p2p_listen = 'nowhere'", "p2p_listen"),
    ("peers = ['10.0.0.1']", "peers"),
    ("max_blocks_behind = -1", "max_blocks_behind"),
    ("pruning = 'keep-everything'", "pruning"),
    ("metrics_enabled = 1", "metrics_enabled"),
])
def test_invalid_config_file_value_names_the_key(home: Path, line: str, key: str) -> None:
    before = (home / CONFIG_FILE).read_text()
    (home / CONFIG_FILE).write_text(before + line + "\n")
    with pytest.raises(ConfigError, match=repr(key)):
        NodeHome.load(home)


@pytest.mark.parametrize(("env", "key"), [
    ({"GOVCHAIN_RPC_MAX_BATCH": "ten"}, "rpc_max_batch"),
    ({"GOVCHAIN_PEER_EXCHANGE": "maybe"}, "peer_exchange"),
    ({"GOVCHAIN_LOG_FORMAT": "yaml"}, "log_format"),
])
def test_invalid_env_value_names_the_key_and_variable(home: Path, env: dict[str, str],
                                                      key: str) -> None:
    with pytest.raises(ConfigError, match=repr(key)) as e:
        load_config(home, env=env)
    assert "env" in e.value.message


def test_invalid_flag_key_is_refused(home: Path) -> None:
    with pytest.raises(ConfigError, match="'colour'"):
        load_config(home, env={}, overrides={"colour": "blue"})


def test_old_config_files_still_load(tmp_path: Path) -> None:
    """A config.toml written by an earlier `govchain init` (every key, no comments)."""
    home = tmp_path / "old"
    init_home(home, make_genesis([KeyPair.from_seed(b"\x01" * 32)]).to_json(), NodeConfig(),
              None)
    (home / CONFIG_FILE).write_text(
        'moniker = "old"\nrpc_listen = "127.0.0.1:8545"\np2p_listen = "127.0.0.1:26656"\n'
        'peers = []\npeer_exchange = true\nmempool_max_txs = 100000\nlog_level = "INFO"\n'
        "verify_threads = 0\n")
    loaded = NodeHome.load(home, env={})
    assert loaded.config.moniker == "old"
    assert loaded.insecure_key_files  # plaintext dev keys are flagged
    # verify_threads became verify_workers; its variable still counts, the new one first.
    assert load_config(home, env={"GOVCHAIN_VERIFY_THREADS": "3"}).verify_workers == 3
    assert load_config(home, env={"GOVCHAIN_VERIFY_THREADS": "3",
                                  "GOVCHAIN_VERIFY_WORKERS": "2"}).verify_workers == 2


def test_docs_table_matches_the_dataclass() -> None:
    text = (ROOT / "docs" / "operator.md").read_text()
    assert render_settings_table() in text, \
        "docs/operator.md is stale: paste the output of `govchain config docs`"


def test_config_show_prints_value_and_source(home: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("GOVCHAIN_LOG_LEVEL", "WARNING")
    assert cli.main(["--json", "config", "show", "--home", str(home),
                     "--set", "max_blocks_behind=7"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["log_level"] == {"value": "WARNING", "source": "env",
                                "env": "GOVCHAIN_LOG_LEVEL", "doc": doc["log_level"]["doc"]}
    assert doc["max_blocks_behind"]["source"] == "flag"
    assert doc["moniker"]["source"] == "file"
    assert doc["mempool_max_txs"]["source"] == "default"


def test_invalid_config_show_with_bad_value_exits_1(home: Path, capsys) -> None:
    assert cli.main(["config", "show", "--home", str(home), "--set", "rpc_max_batch=x"]) == 1
    assert "'rpc_max_batch'" in capsys.readouterr().err
