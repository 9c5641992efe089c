import os
import subprocess
import sys
from pathlib import Path

import pytest

from llmedic.config import load_environment
from llmedic.errors import ConfigError

GOOD = """\
services:
  - name: pharma-qa
    engine: vllm
    instances:
      - name: a
        url: http://127.0.0.1:8101
      - name: b
        url: http://127.0.0.1:8102
        host: gpu-1
    control:
      kind: commands
      commands: {restart: restart_unit}
metrics: {kind: prometheus, url: http://127.0.0.1:9090}
hosts:
  - name: local
  - name: gpu-1
    kind: ssh
    address: 10.0.0.5
    user: llmops
commands:
  restart_unit:
    template: systemctl restart {unit}
    params: {unit: {pattern: "^vllm@[0-9]+$"}}
alert_rules:
  - match: {alertname: VLLMHighP99Latency}
    anomaly: latency
"""


def test_good_file(tmp_path: Path) -> None:
    path = tmp_path / "llmedic.yaml"
    path.write_text(GOOD)
    env = load_environment(path)
    assert [s.name for s in env.services] == ["pharma-qa"]
    found = env.find_instance("127.0.0.1:8102")
    assert found is not None and (found[0].name, found[1].name, found[1].host) == ("pharma-qa", "b", "gpu-1")
    assert env.find_instance("nope") is None


def test_missing_default_file_is_an_empty_environment() -> None:
    assert load_environment().services == []


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        pytest.param(
            ("url: http://127.0.0.1:8101", "url: localhost-8101"),
            "llmedic.yaml:6: services[0].instances[0].url: Input should be a valid URL, relative URL without a base (got 'localhost-8101')",
            id="bad-url",
        ),
        pytest.param(
            ("engine: vllm", "engine: vllm\n    replicas: 3"),
            "llmedic.yaml:4: services[0].replicas: Extra inputs are not permitted",
            id="unknown-key",
        ),
        pytest.param(
            ("host: gpu-1", "host: gpu-9"),
            "llmedic.yaml:1: (top level): service 'pharma-qa' instance 'b' names host 'gpu-9', which is not under hosts:",
            id="unknown-host",
        ),
        pytest.param(
            ("systemctl restart {unit}", "systemctl restart {unit} {extra}"),
            "llmedic.yaml:21: commands.restart_unit: placeholders ['extra'] are not declared under params",
            id="undeclared-placeholder",
        ),
        pytest.param(
            ("{kind: prometheus, url: http://127.0.0.1:9090}", "{kind: prometheus}"),
            "llmedic.yaml:13: metrics: kind 'prometheus' needs a url",
            id="prometheus-without-url",
        ),
        pytest.param(
            ("kind: ssh\n    address: 10.0.0.5", "kind: ssh"),
            "llmedic.yaml:16: hosts[1]: an ssh host needs an address",
            id="ssh-without-address",
        ),
    ],
)
def test_errors_name_file_line_path_and_problem(tmp_path: Path, edit: tuple[str, str], expected: str) -> None:
    path = tmp_path / "llmedic.yaml"
    assert edit[0] in GOOD
    path.write_text(GOOD.replace(edit[0], edit[1], 1))
    with pytest.raises(ConfigError) as exc:
        load_environment(path)
    lines = exc.value.message.splitlines()
    assert lines[0] == f"{path}: 1 problem"
    assert lines[1].strip().startswith(str(path.parent) + "/" + expected), lines[1]


def test_yaml_syntax_error_has_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "llmedic.yaml"
    path.write_text("services:\n  - name: a\n   bad: [\n")
    with pytest.raises(ConfigError) as exc:
        load_environment(path)
    assert exc.value.message.startswith(f"{path}:3:") and "YAML syntax error" in exc.value.message


@pytest.mark.parametrize(
    ("text", "message"),
    [("- a\n- b\n", "the top level must be a mapping (key: value), not list")],
)
def test_top_level_must_be_mapping(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "llmedic.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_environment(path)
    assert exc.value.message == f"{path}: {message}"


def test_named_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        load_environment(tmp_path / "missing.yaml")
    assert exc.value.message == f"{tmp_path / 'missing.yaml'}: file not found"


def test_cli_errors_are_clear(tmp_path: Path) -> None:
    bad = tmp_path / "llmedic.yaml"
    bad.write_text("services:\n  - name: x\n    instances: []\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMEDIC_")}
    result = subprocess.run(
        [sys.executable, "-m", "llmedic", "config", "check", str(bad)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines()[:2] == [
        f"error [config-invalid]: {bad}: 1 problem",
        f"  {bad}:3: services[0].instances: List should have at least 1 item after validation, not 0",
    ]
