"""verify_user and verify_queue judge a token as PyJWT does: their quick path
(Tokens._plain_claims) takes only what PyJWT would take, and hands PyJWT
everything else. Each token here is judged both ways."""

from __future__ import annotations

import base64
import time
from typing import Any

import jwt
import pytest

from frontrow.auth import QUEUE_AUDIENCE, Tokens
from frontrow.errors import Problem

SECRET = "a-secret-of-thirty-two-bytes-ok!"


def forge(claims: dict[str, Any], secret: str = SECRET, **headers: Any) -> str:
    return jwt.encode(claims, secret, algorithm="HS256", headers=headers or None)


def judged(verify: Any, token: str) -> Any:
    try:
        return verify(token)
    except Problem as refused:
        return ("refused", refused.status)


def both_ways(kind: str, token: str) -> tuple[Any, Any]:
    quick, slow = Tokens(SECRET), Tokens(SECRET)
    slow._plain_claims = lambda *_: None  # type: ignore[method-assign]  # PyJWT alone
    return judged(getattr(quick, kind), token), judged(getattr(slow, kind), token)


def tokens() -> dict[str, str]:
    now = int(time.time())
    queue = {
        "aud": QUEUE_AUDIENCE,
        "sub": "ann",
        "cid": 1,
        "tid": "t_a",
        "iat": now,
        "exp": now + 60,
    }
    good_user = forge({"sub": "ann", "iat": now, "exp": now + 60})
    head, body, sig = good_user.split(".")
    return {
        "user": good_user,
        "user, exp only": forge({"sub": "ann", "exp": now + 60}),
        "user, iat only": forge({"sub": "ann", "iat": now - 60}),
        "user, expired": forge({"sub": "ann", "exp": now - 1}),
        "user, issued in the future": forge({"sub": "ann", "iat": now + 600}),
        "user, exp a float": forge({"sub": "ann", "exp": now + 60.5}),
        "user, exp a string": forge({"sub": "ann", "exp": str(now + 60)}),
        "user, exp true": forge({"sub": "ann", "exp": True}),
        "user, not yet (nbf)": forge({"sub": "ann", "exp": now + 60, "nbf": now + 600}),
        "user, with an audience": forge({"sub": "ann", "exp": now + 60, "aud": "x"}),
        "user, no sub": forge({"exp": now + 60}),
        "user, sub a number": forge({"sub": 7, "exp": now + 60}),
        "user, other secret": forge({"sub": "ann", "exp": now + 60}, secret="x" * 32),
        "user, other header": forge({"sub": "ann", "exp": now + 60}, kid="k1"),
        "user, signature changed": f"{head}.{body}.{sig[:-2]}{'AA' if sig[-2:] != 'AA' else 'BB'}",
        "user, body padded": f"{head}.{body}=.{sig}",
        "user, body changed": f"{head}.{body[:-1]}{'A' if body[-1] != 'A' else 'B'}.{sig}",
        "user, alg none": jwt.encode({"sub": "ann", "exp": now + 60}, None, algorithm="none"),
        "user, four parts": good_user + ".x",
        "user, signature not ascii": f"{head}.{body}.{sig[:-1]}\u00e9",
        "user, body not ascii": f"{head}.{body}\u00e9.{sig}",
        "user, garbage": "not a token",
        "queue": forge(queue),
        "queue, audience in a list": forge({**queue, "aud": [QUEUE_AUDIENCE]}),
        "queue, other audience": forge({**queue, "aud": "frontrow:other"}),
        "queue, no audience": forge({k: v for k, v in queue.items() if k != "aud"}),
        "queue, no tid": forge({k: v for k, v in queue.items() if k != "tid"}),
        "queue, expired": forge({**queue, "exp": now - 1}),
        "queue, a claim more": forge({**queue, "jti": "j"}),
        "queue, a tid with a space": forge({**queue, "tid": "t a"}),
        "queue, cid a string": forge({**queue, "cid": "1"}),
        "queue, given back fields": forge({**queue, "at": 123, "sc": 4}),
        "queue, signed as a user token": forge({k: v for k, v in queue.items() if k != "aud"}),
    }


@pytest.mark.parametrize("kind", ["verify_user", "verify_queue"])
def test_the_quick_path_judges_every_token_as_pyjwt_does(kind: str) -> None:
    for name, token in tokens().items():
        quick, slow = both_ways(kind, token)
        assert quick == slow, name


def test_our_own_tokens_take_the_quick_path(monkeypatch: pytest.MonkeyPatch) -> None:
    issuer, reader = Tokens(SECRET), Tokens(SECRET)
    user = issuer.user_token("ann")
    queue = issuer.queue_token("ann", 1, "t_a", 5, 2)

    def no_pyjwt(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("PyJWT was asked")

    monkeypatch.setattr(jwt, "decode", no_pyjwt)
    assert reader.verify_user(user) == "ann"
    claims = reader.verify_queue(queue)
    assert (claims.user_id, claims.concert_id, claims.token_id, claims.born_ms, claims.score) == (
        "ann",
        1,
        "t_a",
        5,
        2,
    )
    assert issuer.verify_queue(queue) == claims  # remembered when it was issued


def test_a_forged_token_is_refused_by_both() -> None:
    now = int(time.time())
    body = base64.urlsafe_b64encode(b'{"sub":"ann","exp":%d}' % (now + 60)).rstrip(b"=").decode()
    head = Tokens(SECRET)._header
    forged = f"{head}.{body}.{'A' * 43}"
    assert both_ways("verify_user", forged) == (("refused", 401), ("refused", 401))


def test_our_tokens_are_what_pyjwt_would_sign(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(time, "time", lambda: 1_800_000_000.5)
    tokens = Tokens(SECRET)
    user = tokens.user_token("ann", lifetime_s=600)
    assert user == jwt.encode(
        {"sub": "ann", "iat": 1_800_000_000, "exp": 1_800_000_600}, SECRET, algorithm="HS256"
    )
    queue = tokens.queue_token("ann", 7, "t_a-B_9", 1_799_999_999_123, 2**53 + 5)
    claims = jwt.decode(
        queue,
        SECRET,
        algorithms=["HS256"],
        audience=QUEUE_AUDIENCE,
        options={"verify_exp": False, "verify_iat": False},  # its clock is not the patched one
    )
    assert queue == jwt.encode(claims, SECRET, algorithm="HS256")
    assert (claims["cid"], claims["tid"], claims["at"], claims["sc"]) == (
        7,
        "t_a-B_9",
        1_799_999_999_123,
        2**53 + 5,
    )
