"""Proof that a subject was served: the queue signs (who, workflow, subject) into a token.

An answer counts, and earns the experts' feedback, only with the token the queue gave that
volunteer for that subject, so nobody can answer (or learn the label of) a subject of their
choice. A token needs no row: anonymous visitors get no Volunteer or session row until their
first answer, and are known meanwhile by a random id in a signed cookie.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from django.conf import settings
from django.core import signing

from labeling.errors import Forbidden

VISITOR_COOKIE = "rb_visitor"
_SALT = "labeling.serving"


def _signer() -> signing.TimestampSigner:
    return signing.TimestampSigner(salt=_SALT)


class NotServed(Forbidden):
    code = "not_served"


@dataclass(frozen=True)
class Identity:
    """Who asks: `key` names a signed-in user or an anonymous visitor; `new_visitor` is the
    visitor id to set as the cookie when this request is the visitor's first."""

    key: str
    new_visitor: str | None = None


def identity_for_request(request) -> Identity:
    if request.user.is_authenticated:
        return Identity(f"user:{request.user.pk}")
    visitor = request.get_signed_cookie(VISITOR_COOKIE, default=None, salt=_SALT)
    if visitor:
        return Identity(f"visitor:{visitor}")
    new = secrets.token_hex(16)
    return Identity(f"visitor:{new}", new_visitor=new)


def set_visitor_cookie(response, identity: Identity) -> None:
    """Remember a new anonymous visitor on the response (no row is written)."""
    if identity.new_visitor:
        response.set_signed_cookie(
            VISITOR_COOKIE, identity.new_visitor, salt=_SALT,
            max_age=settings.SESSION_COOKIE_AGE, httponly=True, samesite="Lax",
            secure=settings.SESSION_COOKIE_SECURE,
        )


def _message(identity: Identity, workflow_id: int, subject_id: int) -> str:
    return f"{identity.key}|{workflow_id}|{subject_id}"


def served_token(identity: Identity, workflow_id: int, subject_id: int) -> str:
    """The token the queue hands out with a subject: a timestamp and an HMAC, not the message."""
    _, timestamp, signature = _signer().sign(_message(identity, workflow_id, subject_id)).rsplit(
        ":", 2)
    return f"{timestamp}:{signature}"


def require_served(identity: Identity, workflow_id: int, subject_id: int, token: str) -> None:
    """NotServed (403) unless `token` is this identity's for this subject, and recent."""
    try:
        _signer().unsign(f"{_message(identity, workflow_id, subject_id)}:{token}",
                       max_age=settings.SERVED_TOKEN_MAX_AGE_S)
    except signing.SignatureExpired:
        raise NotServed(f"the queue served subject {subject_id} too long ago: fetch the queue "
                        "again") from None
    except signing.BadSignature:
        raise NotServed(f"subject {subject_id} was not served to you in workflow {workflow_id}:"
                        " answer the subjects the queue gives you") from None
