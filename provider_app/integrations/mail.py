"""Reading an e-mail: the stdlib ``email`` package (``policy=default``) and nothing clever.

``parse`` gives the parts intake needs (sender, subject, the text body, attachments, the
Message-ID); ``addresses`` the intake address scheme; ``extract_pairs`` the ``Label: value``
lines a client writes, which ``fields_for_type`` maps onto a task type's intake fields.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import getaddresses, parseaddr
from html.parser import HTMLParser
from typing import Any

from ..intake.fields import specs_from

MAX_SUBJECT = 500
_PAIR = re.compile(r"^\s*([A-Za-z][A-Za-z0-9 _/()#.'-]{0,60}?)\s*[:=]\s*(\S.*?)\s*$")
_PARENS = re.compile(r"\s*\(.*?\)\s*")
_NON_WORD = re.compile(r"[^a-z0-9]+")
# Where a reply's quoted history starts; everything after it is the earlier message.
_QUOTE_MARKERS = (
    re.compile(r"^On .{1,200} wrote:\s*$"),
    re.compile(r"^-{2,}\s*Original Message\s*-{2,}\s*$", re.IGNORECASE),
    re.compile(r"^From:\s.+$"),
    re.compile(r"^_{10,}\s*$"),
)
ENVELOPE_KEYS = {
    "priority": "priority",
    "reference": "external_ref", "your_reference": "external_ref", "ref": "external_ref",
    "external_ref": "external_ref", "external_reference": "external_ref",
    "state": "state",
}


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class ParsedEmail:
    message_id: str
    sender: str
    sender_name: str
    subject: str
    body: str
    attachments: tuple[Attachment, ...] = ()
    recipients: tuple[str, ...] = field(default=())


class _TextOnly(HTMLParser):
    """The visible text of an HTML body (for messages without a text/plain part)."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag in ("br", "p", "div", "tr", "li"):
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    parser = _TextOnly()
    parser.feed(html)
    return re.sub(r"\n{3,}", "\n\n", "".join(parser.parts)).strip()


def normalise_message_id(value: str | None, raw: bytes) -> str:
    """The Message-ID without brackets, lower-cased; a digest of the bytes when absent, so an
    exact re-delivery of a message without one is still recognised."""
    text = (value or "").strip().strip("<>").strip().lower()
    if not text:
        return "sha256:" + hashlib.sha256(raw).hexdigest()
    return text[:255]


def parse(raw: bytes) -> ParsedEmail:
    message: EmailMessage = message_from_bytes(raw, policy=policy.default)  # type: ignore[assignment]
    name, address = parseaddr(str(message.get("From", "")))
    subject = " ".join(str(message.get("Subject", "")).split())[:MAX_SUBJECT]
    body_part = message.get_body(preferencelist=("plain", "html"))
    body = ""
    if body_part is not None:
        content = body_part.get_content()
        body = html_to_text(content) if body_part.get_content_subtype() == "html" else content
    attachments = []
    for index, part in enumerate(message.iter_attachments(), 1):
        if part.get_content_type() == "message/rfc822":
            inner = part.get_payload(0) if part.is_multipart() else part.get_content()
            data = inner.as_bytes() if hasattr(inner, "as_bytes") else bytes(inner)
            filename = part.get_filename() or f"forwarded-{index}.eml"
        else:
            data = part.get_payload(decode=True) or b""
            filename = part.get_filename() or f"attachment-{index}"
        attachments.append(Attachment(filename, part.get_content_type(), data))
    recipients = tuple(addr.lower() for _, addr in getaddresses(
        [str(v) for v in message.get_all("To", []) + message.get_all("Cc", [])]) if addr)
    return ParsedEmail(
        message_id=normalise_message_id(message.get("Message-ID"), raw),
        sender=address.strip().lower(), sender_name=name.strip()[:200], subject=subject,
        body=body.replace("\r\n", "\n").strip(), attachments=tuple(attachments),
        recipients=recipients,
    )


def strip_quoted(body: str) -> str:
    """A reply's own text: up to the first quote marker, without ``>`` lines."""
    kept = []
    for line in body.splitlines():
        if any(marker.match(line.strip()) for marker in _QUOTE_MARKERS):
            break
        if not line.lstrip().startswith(">"):
            kept.append(line)
    return "\n".join(kept).strip()


def _key(text: str) -> str:
    return _NON_WORD.sub("_", _PARENS.sub(" ", text).strip().lower()).strip("_")


def extract_pairs(text: str) -> dict[str, str]:
    """``Label: value`` lines (not quoted ones) by snake_case label; a later line wins."""
    pairs: dict[str, str] = {}
    for line in text.splitlines():
        if line.lstrip().startswith(">"):
            continue
        match = _PAIR.match(line)
        if match:
            pairs[_key(match.group(1))] = match.group(2)
    return pairs


def fields_for_type(pairs: Mapping[str, str], intake_schema: list[dict]) -> dict[str, Any]:
    """Map extracted pairs onto a task type's fields by name or label, as text.

    Multi-choice values may be written with commas; the intake rules expect ';'.
    """
    values: dict[str, Any] = {}
    for spec in specs_from(intake_schema):
        for key in (spec.name, _key(spec.name), _key(spec.label)):
            if key in pairs:
                value = pairs[key]
                values[spec.name] = value.replace(",", ";") if spec.type == "multi" else value
                break
    return values


def envelope_from(pairs: Mapping[str, str]) -> dict[str, str]:
    """priority / external_ref / state as written in the message (text, unchecked)."""
    found: dict[str, str] = {}
    for key, name in ENVELOPE_KEYS.items():
        if key in pairs and name not in found:
            found[name] = pairs[key]
    return found


def reply_subject(subject: str, token: str) -> str:
    base = subject if subject.lower().startswith("re:") else f"Re: {subject}"
    return f"{base} {token}".strip()[:300]
