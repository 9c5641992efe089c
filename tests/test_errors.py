import re
from pathlib import Path

from llmedic.errors import AuthoringError, ConfigError, LlmedicError, OperationalError, all_error_codes

DOCS = Path(__file__).resolve().parents[1] / "docs" / "errors.md"


def test_codes_are_unique() -> None:
    codes = all_error_codes()
    assert len(codes) == len(set(codes))


def test_docs_list_exactly_the_error_codes_in_tree_order() -> None:
    documented = re.findall(r"^## `([a-z-]+)`", DOCS.read_text(), flags=re.MULTILINE)
    assert documented == all_error_codes()


def test_two_families() -> None:
    assert {c.__name__ for c in LlmedicError.__subclasses__()} == {"AuthoringError", "OperationalError"}
    assert issubclass(ConfigError, AuthoringError) and not issubclass(ConfigError, OperationalError)


def test_message_carries_the_fix() -> None:
    assert str(ConfigError("bad", hint="do this")) == "bad\n  fix: do this"
