"""Approver identity: per-person tokens, token proofs, one-time approval codes, the sweeper's key.

How each channel proves who decides (docs/operator-guide.md, "Approver identity"):

- **CLI and HTTP** (anyone resuming the run through the Prefect API): the decision carries a
  *proof*, ``proof-v1:`` + HMAC-SHA256(the approver's token, [flow run, action, approver, approve,
  comment, the gate's nonce]). The flow recomputes it from the tokens file, so it cannot be made
  without the token and is useless for another run, action, approver, verdict or comment.
- **The Prefect UI form** (which cannot authenticate): a one-time *code* sent to the approver's own
  route when the gate opens, bound to the flow run, the action and the approver, valid until the
  gate's deadline. Only a keyed digest of each code is kept (keyed with the system key, so a copy of
  the incident record is no help in guessing it).
- **The timeout sweeper**: ``llmedic-timeout`` decisions carry a proof made with the system key;
  without one the flow honours them only once the deadline has really passed.

Nothing here imports Prefect: the flow, the CLI and the sweeper share these functions; the gate
(:mod:`llmedic.approval.gate`) judges a decision with them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import stat
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from llmedic.errors import ApprovalError, ConfigError

__all__ = [
    "PROOF_PREFIX",
    "TIMEOUT_APPROVER",
    "Identity",
    "add_token",
    "code_digest",
    "make_proof",
    "new_code",
    "read_secret_file",
    "read_tokens",
    "system_key",
    "valid_person",
]

TIMEOUT_APPROVER = "llmedic-timeout"
"""The approver name the sweeper uses; people cannot use names starting with ``llmedic``."""

PROOF_PREFIX = "proof-v1:"
"""What a token proof starts with in the form's ``code`` field (anything else is a one-time code)."""

# No 0/O, 1/I: a code is read from a chat message or an email and typed or pasted into a form.
_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
_CODE_LENGTH = 16  # 80 bits: no guessing within a gate's lifetime, nor offline from a leaked digest
_PERSON = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,62}$")

Identity = Literal["token", "code", "none", "system"]


def valid_person(name: str) -> str:
    """``name`` stripped, if a person may use it; raise :class:`ApprovalError` otherwise."""
    who = name.strip()
    if not who:
        raise ApprovalError("an approval decision needs the name of who takes it", hint="pass --by NAME")
    if who.lower().startswith("llmedic"):
        raise ApprovalError(
            f"approver names starting with 'llmedic' are reserved ({who!r})", hint="use your own name"
        )
    return who


def read_secret_file(path: Path, what: str) -> str:
    """The text of a secrets file, refused when group or others may read it."""
    try:
        st = path.stat()
        if stat.S_IMODE(st.st_mode) & 0o077:
            raise ConfigError(
                f"{what} {path} is readable by group or others (mode {stat.S_IMODE(st.st_mode):04o}); "
                "llmedic will not use secrets from it",
                hint=f"chmod 600 {path}, and replace the secrets in it: anyone on the host could read them",
            )
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{what} {path} cannot be read ({exc.strerror})") from None


def _write_private(path: Path, text: str) -> None:
    """Replace ``path`` atomically with a file that only its owner can read."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class _TokensFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    approvers: dict[str, str] = Field(default_factory=dict)


def read_tokens(path: Path) -> dict[str, str]:
    """Approver name → token from the tokens file (empty when the file does not exist)."""
    if not path.exists():
        return {}
    text = read_secret_file(path, "the approver tokens file")
    try:
        return _TokensFile.model_validate(yaml.safe_load(text) or {}).approvers
    except (yaml.YAMLError, ValueError) as exc:
        raise ConfigError(
            f"the approver tokens file {path} is not valid ({type(exc).__name__})",
            hint="it holds `approvers: {NAME: TOKEN}`; `llmedic approvers add NAME` writes it",
        ) from None


def add_token(path: Path, name: str, *, rotate: bool = False) -> str:
    """Generate a token for ``name``, store it in the tokens file (mode 0600) and return it."""
    who = valid_person(name)
    if not _PERSON.match(who):
        raise ApprovalError(
            f"{who!r} is not a usable approver name",
            hint="letters, digits and . _ @ - (at most 63 characters), starting with a letter or digit",
        )
    tokens = read_tokens(path)
    if who in tokens and not rotate:
        raise ApprovalError(
            f"{who!r} already has a token in {path}",
            hint="pass --rotate to replace it (the old one stops working)",
        )
    tokens[who] = secrets.token_urlsafe(32)
    header = "# llmedic approver tokens (keep mode 0600); written by `llmedic approvers add`\n"
    _write_private(path, header + yaml.safe_dump({"approvers": dict(sorted(tokens.items()))}))
    return tokens[who]


def system_key(home: Path) -> bytes:
    """llmedic's own key (``<home>/approvals.key``, 0600; created on first use): it keys the digests
    of one-time codes and signs the sweeper's timeout decisions."""
    path = home / "approvals.key"
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it first: use theirs
            pass
        else:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(secrets.token_hex(32) + "\n")
    key = read_secret_file(path, "the approvals key").strip()
    if len(key) != 64:
        raise ConfigError(f"the approvals key {path} is damaged", hint="delete it; llmedic makes a new one")
    return bytes.fromhex(key)


def _message(run_id: str, action: str, approver: str, approve: bool, comment: str, nonce: str) -> bytes:
    # JSON, not a joined string: no choice of name or comment can make two decisions sign alike.
    return json.dumps([run_id, action, approver, approve, comment, nonce], separators=(",", ":")).encode()


def make_proof(
    secret: str | bytes, *, run_id: str, action: str, approver: str, approve: bool, comment: str, nonce: str
) -> str:
    """The proof a decision carries in the form's ``code`` field (CLI, HTTP clients, the sweeper)."""
    key = secret.encode() if isinstance(secret, str) else secret
    mac = hmac.new(key, _message(run_id, action, approver, approve, comment, nonce), hashlib.sha256)
    return PROOF_PREFIX + mac.hexdigest()


def new_code() -> str:
    """A one-time approval code, e.g. ``K7QM-X2ZA-PL9D-RTWE``."""
    raw = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(_CODE_LENGTH))
    return "-".join(raw[i : i + 4] for i in range(0, _CODE_LENGTH, 4))


def _normal_code(code: str) -> str:
    return re.sub(r"[\s-]", "", code).upper()


def code_digest(key: bytes, *, run_id: str, action: str, approver: str, code: str) -> str:
    """What is stored instead of a code: keyed, and bound to the run, the action and the approver."""
    msg = json.dumps([run_id, action, approver, _normal_code(code)], separators=(",", ":")).encode()
    return hmac.new(key, msg, hashlib.sha256).hexdigest()
