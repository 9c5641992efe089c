import pytest

from llmedic.adapters.control import make_control
from llmedic.adapters.shell import LocalShell, render_command, run_template
from llmedic.config import CommandParam, CommandTemplate, EnvironmentFile
from llmedic.errors import ConfigError, RemoteCommandError

RESTART = CommandTemplate(
    template="echo restarting {unit}", params={"unit": CommandParam(pattern=r"^vllm@[0-9]+$")}
)
LIMIT = CommandTemplate(
    template="echo limit={n} mode={mode}",
    params={"n": CommandParam(pattern=r"^[0-9]{1,4}$"), "mode": CommandParam(choices=["soft", "hard"])},
)


def test_render_quotes_validated_values() -> None:
    assert render_command("restart", RESTART, {"unit": "vllm@8000"}) == "echo restarting vllm@8000"
    assert render_command("limit", LIMIT, {"n": 8, "mode": "soft"}) == "echo limit=8 mode=soft"


# Injection attempts: every one must be refused before anything runs.
INJECTIONS = [
    "vllm@1; rm -rf /",
    "vllm@1 && reboot",
    "$(reboot)",
    "`id`",
    "vllm@1\nreboot",
    "vllm@1|sh",
    "../../etc/passwd",
    "",
]


@pytest.mark.fault(
    tried="shell metacharacters, newlines, $(), backticks, .. through templated parameters",
    survives="refused by validation before anything runs",
)
@pytest.mark.parametrize("value", INJECTIONS)
def test_injection_is_refused(value: str) -> None:
    with pytest.raises(RemoteCommandError) as exc:
        render_command("restart", RESTART, {"unit": value})
    why = "climbs out of its directory ('..')" if ".." in value else "does not match '^vllm@[0-9]+$'"
    assert exc.value.message == f"command 'restart': unit={value!r} {why}; refused"


def test_default_pattern_still_quotes() -> None:
    t = CommandTemplate(template="echo {x}", params={"x": CommandParam()})
    assert render_command("t", t, {"x": "a.b:c"}) == "echo a.b:c"
    with pytest.raises(RemoteCommandError):
        render_command("t", t, {"x": "a b"})


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "command 'restart': parameters do not match the template (missing ['unit'], unexpected [])"),
        (
            {"unit": "vllm@1", "x": "1"},
            "command 'restart': parameters do not match the template (missing [], unexpected ['x'])",
        ),
    ],
)
def test_parameters_must_match(params: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        render_command("restart", RESTART, params)
    assert exc.value.message == message


def test_choices() -> None:
    with pytest.raises(RemoteCommandError) as exc:
        render_command("limit", LIMIT, {"n": 8, "mode": "max"})
    assert exc.value.message == "command 'limit': mode='max' is not one of ['soft', 'hard']; refused"


def test_local_shell_runs_allowlisted_templates_only() -> None:
    result = run_template(LocalShell(), {"restart": RESTART}, "restart", {"unit": "vllm@1"})
    assert (result.returncode, result.stdout) == (0, "restarting vllm@1\n")
    with pytest.raises(ConfigError) as exc:
        run_template(LocalShell(), {"restart": RESTART}, "reboot", {})
    assert exc.value.message == "command 'reboot' is not in the allowlist (commands: in llmedic.yaml)"


def test_failures_and_timeouts() -> None:
    fail = CommandTemplate(template="echo oops >&2; exit 3")
    with pytest.raises(RemoteCommandError) as exc:
        run_template(LocalShell(), {"fail": fail}, "fail", {})
    assert exc.value.message == "local: command 'fail' exited 3: oops"
    with pytest.raises(RemoteCommandError) as exc:
        LocalShell().run("sleep 5", timeout=0.2)
    assert exc.value.message == "local: 'sleep 5' timed out after 0.2s"


def _commands_env(rss: str) -> EnvironmentFile:
    return EnvironmentFile.model_validate(
        {
            "services": [
                {
                    "name": "svc",
                    "instances": [{"name": "i0", "url": "http://127.0.0.1:9"}],
                    "control": {"kind": "commands", "commands": {"drain": "rss", "rss": "rss"}},
                }
            ],
            "commands": {"rss": {"template": rss, "params": {"instance": {}}}},
        }
    )


@pytest.mark.parametrize(
    ("template", "low", "high"),
    [
        # A real process's resident set, read from /proc as an operator's template would.
        ("awk '/VmRSS/ {{print $2}}' /proc/self/status # {instance}", 100 * 1024, 200 * 2**20),
        ("echo 2048 # {instance}", 2048 * 1024, 2048 * 1024),
    ],
)
def test_rss_command_reads_resident_memory_in_kib(template: str, low: float, high: float) -> None:
    env = _commands_env(template)
    control = make_control(env.services[0], env)
    value = control.rss_bytes(env.services[0].instances[0])
    assert value is not None and low <= value <= high


@pytest.mark.parametrize("template", ["echo not-a-number # {instance}", "exit 3 # {instance}"])
def test_rss_command_that_answers_nonsense_is_no_sample(template: str) -> None:
    env = _commands_env(template)
    assert make_control(env.services[0], env).rss_bytes(env.services[0].instances[0]) is None
