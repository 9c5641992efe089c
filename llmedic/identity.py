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

Nothing here imports Prefect: the flow, the CLI and the sweeper share these functions.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import stat
from datetime import datetime
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from llmedic.errors import ApprovalError, ConfigError

__all__ = [
    "PROOF_PREFIX",
    "TIMEOUT_APPROVER",
    "Gate",
    "Identity",
    "Verdict",
    "add_token",
    "code_digest",
    "judge",
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


class Gate(BaseModel):
    """What the flow needs to judge a decision at one gate (no secret in it: codes are digests)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    flow_run_id: str
    action: str
    nonce: str
    """Published with the gate (incident record, form description); part of every token proof."""
    deadline: datetime
    approvers: list[str] = Field(default_factory=list)
    code_digests: dict[str, str] = Field(default_factory=dict)
    """Approver → keyed digest of the one-time code sent to them."""


class Verdict(BaseModel):
    """Does a submitted decision count, and how was its author verified?"""

    model_config = ConfigDict(extra="forbid", frozen=True)

    counts: bool
    identity: Identity
    verified: bool
    refused: str = ""
    """Why it does not count (empty when it does)."""


def _refuse(reason: str, identity: Identity = "none") -> Verdict:
    return Verdict(counts=False, identity=identity, verified=False, refused=reason)


def judge(
    gate: Gate,
    *,
    approver: str,
    approve: bool,
    comment: str,
    credential: str,
    now: datetime,
    tokens: dict[str, str],
    key: bytes,
) -> Verdict:
    """Judge one decision submitted to ``gate`` (pure: the caller reads files and the clock).

    A decision that does not count never rejects the fix: the gate waits for the next one.
    """
    who = approver.strip()
    cred = credential.strip()

    def proof(secret: str | bytes) -> str:
        return make_proof(
            secret,
            run_id=gate.flow_run_id,
            action=gate.action,
            approver=who,
            approve=approve,
            comment=comment,
            nonce=gate.nonce,
        )

    if who == TIMEOUT_APPROVER:
        if cred.startswith(PROOF_PREFIX) and hmac.compare_digest(cred, proof(key)):
            return Verdict(counts=True, identity="system", verified=True)
        if now >= gate.deadline:  # the flow's own clock says the time is up: nobody needs to prove it
            return Verdict(counts=True, identity="system", verified=True)
        return _refuse(
            f"{TIMEOUT_APPROVER!r} is the sweeper's name: without its proof it counts only after the "
            f"deadline ({gate.deadline:%Y-%m-%d %H:%M:%S} UTC)"
        )
    if not who:
        return _refuse("the decision names no approver")
    if who.lower().startswith("llmedic"):
        return _refuse(f"approver names starting with 'llmedic' are reserved ({who!r})")
    if not gate.approvers:
        return Verdict(counts=True, identity="none", verified=False)
    if who not in gate.approvers:
        return _refuse(f"{who!r} is not one of the approvers ({', '.join(gate.approvers)})")
    if now >= gate.deadline:
        return _refuse(
            f"the gate's deadline ({gate.deadline:%Y-%m-%d %H:%M:%S} UTC) has passed: the code or proof has expired"
        )
    if cred.startswith(PROOF_PREFIX):
        token = tokens.get(who)
        if token is None:
            return _refuse(f"{who!r} has no token on file (`llmedic approvers add {who}`)", "token")
        if not hmac.compare_digest(cred, proof(token)):
            return _refuse(
                f"the token proof for {who!r} does not match (a wrong token, or a proof made for another "
                "run, action, decision or comment)",
                "token",
            )
        return Verdict(counts=True, identity="token", verified=True)
    if not cred:
        return _refuse(
            f"{who!r} gave no approval code (it was sent to their own route when the gate opened)", "code"
        )
    expected = gate.code_digests.get(who)
    given = code_digest(key, run_id=gate.flow_run_id, action=gate.action, approver=who, code=cred)
    # Compare even when no code was sent to them, so the answer takes the same time either way.
    if not hmac.compare_digest(given, expected or "0" * 64) or expected is None:
        return _refuse(
            f"the approval code is not valid for {who!r} at this gate (wrong, or from another gate or run)",
            "code",
        )
    return Verdict(counts=True, identity="code", verified=True)
