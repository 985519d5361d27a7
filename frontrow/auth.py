"""User tokens and queue tokens: HS256 JWTs that are never accepted as each other."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

import jwt
import orjson

from frontrow.errors import unauthenticated

QUEUE_AUDIENCE = "frontrow:queue"
QUEUE_TOKEN_LIFETIME_S = 2 * 24 * 3600
USER_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
# Token ids are new_token_id()'s alphabet; status.lua takes a batch of them
# space-separated, so no id may hold a space.
TOKEN_ID = USER_ID
_CACHE_MAX = 200_000
USER_MAX_AGE_S = 86400.0
# The claims each kind of token may carry for verify_*'s quick path to judge
# it; a token with any other claim (aud on a user token, nbf, ...) is PyJWT's.
USER_CLAIMS = frozenset(("sub", "iat", "exp"))
QUEUE_CLAIMS = frozenset(("aud", "sub", "cid", "tid", "iat", "exp", "at", "sc"))
# the header PyJWT writes on every HS256 token (whatever the key): what it takes
PYJWT_HEADER = jwt.encode({}, "k" * 32, algorithm="HS256").partition(".")[0]


@dataclass(frozen=True, slots=True)
class QueueClaims:
    user_id: str
    concert_id: int
    token_id: str
    exp: float
    # What gives the place back when Redis lost it (status.lua): when the state
    # of the Redis that issued it began (ms, Redis's clock; 0 = unknown), and
    # its place's score in the line (an admitted place: one admission had
    # reached; -1 = unknown).
    born_ms: int = 0
    score: int = -1


def new_user_id() -> str:
    return "u_" + secrets.token_urlsafe(12)


def new_token_id() -> str:
    return "t_" + secrets.token_urlsafe(12)


class Tokens:
    """Signs and verifies both kinds of token with one secret.

    Verified queue tokens are cached by their exact string: a waiting browser
    sends the same token on every poll, and HMAC + JSON decoding is most of a
    poll's CPU. A forged or tampered string never enters the cache.
    """

    def __init__(self, secret: str, user_max_age_s: float = USER_MAX_AGE_S) -> None:
        self._secret = secret
        self._key = secret.encode()
        self._header = PYJWT_HEADER
        self._user_max_age_s = user_max_age_s
        self._queue_cache: dict[str, QueueClaims] = {}
        self._user_cache: dict[str, tuple[str, float | None, float | None]] = {}

    def user_token(self, user_id: str, lifetime_s: int = 24 * 3600) -> str:
        if not USER_ID.fullmatch(user_id):
            raise ValueError("user id must be 1-64 characters of [A-Za-z0-9_-]")
        if lifetime_s > self._user_max_age_s:
            raise ValueError(
                f"a lifetime of {lifetime_s} s is past FRONTROW_USER_TOKEN_MAX_AGE_S "
                f"({self._user_max_age_s:g} s): the server would refuse the token"
            )
        now = int(time.time())
        return self._sign({"sub": user_id, "iat": now, "exp": now + lifetime_s})

    def queue_token(
        self, user_id: str, concert_id: int, token_id: str, born_ms: int = 0, score: int = -1
    ) -> str:
        """A queue token; `born_ms` and `score` let a Redis that lost the place
        take it back from the token (QueueClaims)."""
        now = int(time.time())
        exp = now + QUEUE_TOKEN_LIFETIME_S
        claims = {
            "aud": QUEUE_AUDIENCE,
            "sub": user_id,
            "cid": concert_id,
            "tid": token_id,
            "iat": now,
            "exp": exp,
            "at": born_ms,
            "sc": score,
        }
        token = self._sign(claims)
        # its next request may well come to this process: no need to verify it there
        self._remember_queue(token, QueueClaims(user_id, concert_id, token_id, exp, born_ms, score))
        return token

    def _sign(self, claims: dict[str, Any]) -> str:
        """The token PyJWT's encode makes of these claims (its header, compact
        JSON: byte for byte the same for our ASCII claims), in C: PyJWT spends
        ~25 us a token on its key checks and JSON in Python, once per entry."""
        if not self._key:
            return jwt.encode(claims, self._secret, algorithm="HS256")
        signed = f"{self._header}.{_b64(orjson.dumps(claims))}"
        return f"{signed}.{_b64(hmac.new(self._key, signed.encode(), hashlib.sha256).digest())}"

    def _plain_claims(self, token: str, allowed: frozenset[str]) -> dict[str, Any] | None:
        """The claims of a token PyJWT would accept: signed with our secret
        under PyJWT's own header, canonical base64, only `allowed` claims, exp
        and iat plain integers, exp ahead and iat past. None when any of that
        is not so: PyJWT then judges the token (and refuses a forgery). It
        spends ~25 us a token on checks in Python (every character against
        the alphabet, the key against PEM and DER shapes) that this does in C,
        and a rush brings a new token to each worker for each buyer."""
        head, _, rest = token.partition(".")
        body, _, signature = rest.partition(".")
        if head != self._header or not body or not signature.isascii() or not self._key:
            return None
        digest = hmac.new(self._key, f"{head}.{body}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(_b64(digest), signature):
            return None
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            claims = orjson.loads(raw)
        except (ValueError, orjson.JSONDecodeError):
            return None
        if _b64(raw) != body or type(claims) is not dict:
            return None
        now = time.time()
        exp, iat = claims.get("exp"), claims.get("iat")
        if (
            not claims.keys() <= allowed
            or (exp is not None and (type(exp) is not int or exp <= now))
            or (iat is not None and (type(iat) is not int or iat > now))
        ):
            return None
        return claims

    def verify_user(self, token: str) -> str:
        """The user id of a valid user token (a queue token is rejected: it has an audience).

        Cached by the exact string, as queue tokens are (a buyer sends the same
        one to enter and to charge); its times are judged again on every use."""
        cached = self._user_cache.get(token)
        if cached is not None:
            user_id, issued, ends = cached
            if self._in_time(time.time(), issued, ends):
                return user_id
            del self._user_cache[token]
        claims = self._plain_claims(token, USER_CLAIMS)
        if claims is None or "sub" not in claims:
            try:
                claims = jwt.decode(
                    token,
                    self._secret,
                    algorithms=["HS256"],
                    options={"require": ["sub"]},
                )
            except jwt.PyJWTError:
                raise unauthenticated("invalid or expired user token") from None
        # A token says when it was issued or when it ends, and either lies
        # within the maximum age: a leaked token is never good forever.
        issued, ends = claims.get("iat"), claims.get("exp")
        if issued is None and ends is None:
            raise unauthenticated("a user token needs iat or exp")
        # PyJWT takes "123" for a time (it applies int()); the age needs numbers
        if any(type(t) not in (int, float, type(None)) for t in (issued, ends)):
            raise unauthenticated("a user token's iat and exp are numbers")
        if not self._in_time(time.time(), issued, ends):
            raise unauthenticated("user token is older or longer-lived than the maximum age")
        user_id = claims["sub"]
        if not isinstance(user_id, str) or not USER_ID.fullmatch(user_id):
            raise unauthenticated("invalid user token subject")
        if len(self._user_cache) >= _CACHE_MAX:
            self._user_cache.clear()
        self._user_cache[token] = (user_id, issued, ends)
        return user_id

    def _in_time(self, now: float, issued: float | None, ends: float | None) -> bool:
        """Not expired, not issued longer ago than the maximum age, not ending
        further ahead than it (PyJWT checked exp when the token was decoded)."""
        if ends is not None and ends <= now:
            return False
        return not (
            (issued is not None and now - issued > self._user_max_age_s)
            or (ends is not None and ends - now > self._user_max_age_s)
        )

    def verify_queue(self, token: str) -> QueueClaims:
        cached = self._queue_cache.get(token)
        if cached is not None:
            if cached.exp > time.time():
                return cached
            del self._queue_cache[token]
        claims = self._plain_claims(token, QUEUE_CLAIMS)
        if claims is None or not (
            claims.get("aud") == QUEUE_AUDIENCE and claims.keys() >= {"sub", "cid", "tid", "exp"}
        ):
            try:
                claims = jwt.decode(
                    token,
                    self._secret,
                    algorithms=["HS256"],
                    audience=QUEUE_AUDIENCE,
                    options={"require": ["sub", "cid", "tid", "exp"]},
                )
            except jwt.PyJWTError:
                raise unauthenticated("invalid or expired queue token") from None
        user_id, concert_id, token_id = claims["sub"], claims["cid"], claims["tid"]
        born_ms, score = claims.get("at", 0), claims.get("sc", -1)
        if not (
            isinstance(user_id, str)
            and USER_ID.fullmatch(user_id)
            and type(concert_id) is int
            and isinstance(token_id, str)
            and TOKEN_ID.fullmatch(token_id)
            and type(born_ms) is int
            and type(score) is int
        ):
            raise unauthenticated("malformed queue token")
        parsed = QueueClaims(user_id, concert_id, token_id, float(claims["exp"]), born_ms, score)
        self._remember_queue(token, parsed)
        return parsed

    def _remember_queue(self, token: str, claims: QueueClaims) -> None:
        if len(self._queue_cache) >= _CACHE_MAX:
            self._queue_cache.clear()
        self._queue_cache[token] = claims


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def bearer(authorization: str | None) -> str:
    """The credential of an `Authorization: Bearer <jwt>` header."""
    if not authorization:
        raise unauthenticated("missing Authorization: Bearer header")
    scheme, _, credential = authorization.partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential or len(credential) > 4096:
        raise unauthenticated("expected Authorization: Bearer <token>")
    return credential
