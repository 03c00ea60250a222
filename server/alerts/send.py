"""Composing and sending alert messages: e-mail over SMTP (STARTTLS or implicit TLS) and webhook POSTs.

A message names the participant code, the flag rule (its title in the recipient's language) and a link
to the participant page. It never carries a score, a symptom grade or free text: :func:`compose` reads
only ``subject`` and ``rule`` of each flag, nothing else is passed in.

Failures raise :class:`DeliveryError`; ``permanent`` ones (a refused address, a 4xx from a webhook) are
not retried, the others are retried with backoff by the dispatcher.
"""

from __future__ import annotations

import hashlib
import json
import smtplib
import ssl
import urllib.error
import urllib.request
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any, Iterable, Mapping
from urllib.parse import quote, urlsplit

from shared.messages import has, t

LOOPBACK = ("127.0.0.1", "localhost", "::1")


class DeliveryError(Exception):
    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


def rule_title(rule: str, lang: str) -> str:
    for key in (f"flag.{rule}.title", f"review.flag.{rule}.title"):
        if has(key):
            return t(key, lang)
    return rule


def participant_link(config: Mapping[str, Any], subject: str) -> str:
    return f"{str(config['PUBLIC_URL']).rstrip('/')}/staff/participants/{quote(subject)}"


def compose(kind: str, flags: Iterable[Mapping[str, str]], lang: str, config: Mapping[str, Any],
            site_code: str) -> dict[str, Any]:
    """Subject line, plain text and the structured part of one message.

    ``flags``: ``{"subject": participant code, "rule": rule id}`` each — nothing else reaches a message.
    """
    items = [{"participant": f["subject"], "rule": f["rule"], "rule_title": rule_title(f["rule"], lang),
              "link": participant_link(config, f["subject"])} for f in flags]
    if kind == "urgent":
        first = items[0]
        subject = t("alerts.mail.urgent_subject", lang, site=site_code, subject=first["participant"],
                    rule=first["rule_title"])
        lines = [t("alerts.mail.urgent_intro", lang, site=site_code), "",
                 t("alerts.mail.line", lang, subject=first["participant"], rule=first["rule_title"]),
                 first["link"]]
    else:
        subject = t("alerts.mail.digest_subject", lang, site=site_code, count=len(items))
        lines = [t("alerts.mail.digest_intro", lang, site=site_code, count=len(items)), ""]
        for item in items:
            lines += [t("alerts.mail.line", lang, subject=item["participant"], rule=item["rule_title"]),
                      item["link"]]
    lines += ["", t("alerts.mail.footer", lang)]
    return {"subject": subject, "text": "\n".join(lines), "items": items}


def message_id(idem_key: str, config: Mapping[str, Any]) -> str:
    """The same Message-ID for every attempt of one delivery, so a resend after a crash is recognisable."""
    domain = str(config.get("SMTP_FROM") or "als-epro@localhost").rsplit("@", 1)[-1] or "localhost"
    return f"<alert-{hashlib.sha256(idem_key.encode()).hexdigest()[:32]}@{domain}>"


def _tls_context(config: Mapping[str, Any]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=config.get("SMTP_CA_FILE") or None)


def send_email(config: Mapping[str, Any], to: str, subject: str, text: str, msg_id: str, idem_key: str) -> None:
    host, port = config.get("SMTP_HOST"), int(config.get("SMTP_PORT") or 587)
    security = str(config.get("SMTP_SECURITY") or "starttls").lower()
    if not host:
        raise DeliveryError("smtp: ALS_EPRO_SMTP_HOST is not set")
    if "@" not in to or any(c in to for c in " \r\n<>,;"):
        raise DeliveryError(f"smtp: not an e-mail address: {to!r}", permanent=True)
    if security not in ("starttls", "tls", "none"):
        raise DeliveryError(f"smtp: SMTP_SECURITY must be starttls, tls or none, not {security!r}")
    if security == "none" and host not in LOOPBACK:
        raise DeliveryError("smtp: SMTP_SECURITY=none is only allowed for a relay on this machine")
    msg = EmailMessage()
    msg["From"] = config.get("SMTP_FROM") or "als-epro@localhost"
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = msg_id
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-ALS-ePRO-Delivery"] = idem_key
    msg.set_content(text)
    timeout = float(config.get("SMTP_TIMEOUT_SECONDS") or 10)
    try:
        if security == "tls":
            smtp = smtplib.SMTP_SSL(host, port, timeout=timeout, context=_tls_context(config))
        else:
            smtp = smtplib.SMTP(host, port, timeout=timeout)
        with smtp:
            if security == "starttls":
                smtp.starttls(context=_tls_context(config))
            if config.get("SMTP_USERNAME"):
                smtp.login(str(config["SMTP_USERNAME"]), str(config.get("SMTP_PASSWORD") or ""))
            smtp.send_message(msg)
    except smtplib.SMTPRecipientsRefused as err:
        codes = [c for c, _m in err.recipients.values()]
        raise DeliveryError(f"smtp: recipient refused {codes}", permanent=all(c >= 500 for c in codes)) from None
    except smtplib.SMTPResponseException as err:
        raise DeliveryError(f"smtp: {err.smtp_code} {err.smtp_error!r}"[:300],
                            permanent=500 <= err.smtp_code < 600 and err.smtp_code != 554) from None
    except (smtplib.SMTPException, OSError) as err:
        raise DeliveryError(f"smtp: {type(err).__name__}: {err}"[:300]) from None


def check_webhook_url(url: str) -> str | None:
    """None when ``url`` may be used; else the reason (https only, http for this machine only)."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return "scheme"
    if parts.scheme == "http" and parts.hostname not in LOOPBACK:
        return "https"
    return None


def send_webhook(config: Mapping[str, Any], url: str, message: Mapping[str, Any], idem_key: str, kind: str,
                 site_code: str) -> None:
    """POST one JSON body: ``msgtype``/``text`` as enterprise chat bots take, plus a structured part."""
    if check_webhook_url(url):
        raise DeliveryError("webhook: only https:// addresses (http:// for this machine)", permanent=True)
    body = {"msgtype": "text", "text": {"content": message["text"]},
            "als_epro": {"delivery": idem_key, "kind": kind, "site": site_code, "flags": message["items"]}}
    req = urllib.request.Request(url, data=json.dumps(body, ensure_ascii=False).encode("utf-8"), method="POST",
                                 headers={"Content-Type": "application/json; charset=utf-8",
                                          "Idempotency-Key": idem_key, "User-Agent": "ALS-ePRO alerts"})
    try:
        with urllib.request.urlopen(req, timeout=float(config.get("WEBHOOK_TIMEOUT_SECONDS") or 10)) as resp:
            resp.read(4096)
    except urllib.error.HTTPError as err:
        raise DeliveryError(f"webhook: HTTP {err.code}",
                            permanent=400 <= err.code < 500 and err.code not in (408, 429)) from None
    except (urllib.error.URLError, OSError, ValueError) as err:
        raise DeliveryError(f"webhook: {type(err).__name__}: {err}"[:300]) from None


def webhook_host(url: str | None) -> str:
    """What pages and the audit trail show of a webhook address (its host; the path may hold a key)."""
    return urlsplit(url).hostname or "" if url else ""
