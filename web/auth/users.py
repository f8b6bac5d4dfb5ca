"""Users, passwords and API tokens in the store, and the authentication of a request.

Passwords are hashed with scrypt (werkzeug). API tokens are random strings shown once; only
their SHA-256 is stored. A session remembers the user id and a fingerprint of the password
hash, so resetting a password or deactivating a user ends their sessions.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
import threading
import time
from collections import deque
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from updraft.store.models import ApiToken, UserModel, utcnow
from web.auth.permissions import CurrentUser, validate_role

PASSWORD_METHOD = "scrypt"
TOKEN_PREFIX = "updraft_"
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024
ADMIN = "Admin"
#: Usernames: ASCII letters, digits and . _ @ + -, starting with a letter or digit (no markup,
#: nothing a URL or a page must escape); unique whatever the case.
USERNAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@+-]*$"
USERNAME_MAX = 64
# A well-formed scrypt hash to check against when the user is unknown, so that an unknown
# name and a wrong password take the same time.
_DUMMY_HASH = generate_password_hash("not a password", method=PASSWORD_METHOD)


class UserError(ValueError):
    """A user operation that cannot be done (unknown user, duplicate name, weak password)."""


class UserConflict(UserError):
    """A change that would lock people out: your own role or active flag, the last Admin."""


def validate_username(username: str) -> str:
    """``username`` if it is a valid new name, else UserError saying the rule."""
    if not isinstance(username, str) or not username:
        raise UserError("the username must not be empty")
    if len(username) > USERNAME_MAX:
        raise UserError(f"the username must have at most {USERNAME_MAX} characters, got "
                        f"{len(username)}")
    if not re.fullmatch(USERNAME_PATTERN[1:-1], username):
        raise UserError(f"invalid username {username!r}: use ASCII letters, digits and "
                        ". _ @ + -, starting with a letter or digit")
    return username


def hash_password(password: str) -> str:
    """The scrypt hash of ``password`` as werkzeug writes it."""
    return generate_password_hash(password, method=PASSWORD_METHOD)


def generate_password() -> str:
    """A random password, 20 URL-safe characters."""
    return secrets.token_urlsafe(15)


def _check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise UserError(f"the password must have at most {MAX_PASSWORD_LENGTH} characters")


def get_user(session: Session, username: str) -> UserModel | None:
    """The user called ``username`` (whatever the case), or None."""
    if not isinstance(username, str) or not username:
        return None
    user = session.scalar(select(UserModel).where(UserModel.username == username))
    if user is None:
        user = session.scalars(select(UserModel).where(
            func.lower(UserModel.username) == username.lower()).order_by(UserModel.id)).first()
    return user


def create_user(session: Session, username: str, password: str, role: str,
                email: str | None = None, first_name: str | None = None,
                last_name: str | None = None) -> UserModel:
    """Add a user; raise UserError for a taken name (whatever the case), an invalid name, a
    bad role or a short password."""
    username = validate_username((username or "").strip())
    try:
        validate_role(role)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    _check_password_rules(password)
    existing = get_user(session, username)
    if existing is not None:
        raise UserConflict(f"user {username!r} already exists"
                           + ("" if existing.username == username
                              else f" (as {existing.username!r}: names are unique whatever "
                                   "the case)"))
    user = UserModel(username=username, email=email, first_name=first_name, last_name=last_name,
                     role=role, password_hash=hash_password(password), active=True)
    session.add(user)
    session.flush()
    return user


def require_user(session: Session, username: str) -> UserModel:
    """The user called ``username``; raise UserError if there is none."""
    user = get_user(session, username)
    if user is None:
        raise UserError(f"no user called {username!r}")
    return user


def set_password(session: Session, username: str, password: str) -> UserModel:
    """Replace a user's password (their sessions end)."""
    _check_password_rules(password)
    user = require_user(session, username)
    user.password_hash = hash_password(password)
    return user


def check_lockout(session: Session, user: UserModel, acting: str | None, *,
                  role: str | None = None, active: bool | None = None,
                  delete: bool = False) -> None:
    """Refuse (UserConflict) a change by ``acting`` that could lock people out: changing your
    own role or active flag, deleting yourself, or leaving no active Admin."""
    demoted = role is not None and role != user.role
    deactivated = active is False and user.active
    if acting is not None and get_user(session, acting) is user:
        if delete:
            raise UserConflict("you cannot delete your own user")
        if demoted:
            raise UserConflict("you cannot change your own role: ask another Admin")
        if deactivated:
            raise UserConflict("you cannot deactivate your own user: ask another Admin")
    losing_admin = user.role == ADMIN and user.active and (
        delete or deactivated or (demoted and role != ADMIN))
    if losing_admin:
        others = session.scalar(select(func.count()).select_from(UserModel).where(
            UserModel.role == ADMIN, UserModel.active.is_(True), UserModel.id != user.id)) or 0
        if not others:
            raise UserConflict(f"{user.username!r} is the last active Admin: make another user "
                               "an active Admin first")


def set_role(session: Session, username: str, role: str, acting: str | None = None
             ) -> UserModel:
    """Give a user another role (``acting``: who asks; their own role stays as it is)."""
    try:
        validate_role(role)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    user = require_user(session, username)
    check_lockout(session, user, acting, role=role)
    user.role = role
    return user


def set_active(session: Session, username: str, active: bool, acting: str | None = None
               ) -> UserModel:
    """Activate or deactivate a user (an inactive user cannot log in or use a token)."""
    user = require_user(session, username)
    check_lockout(session, user, acting, active=active)
    user.active = active
    return user


def delete_user(session: Session, username: str, acting: str | None = None) -> None:
    """Delete a user and their API tokens (``acting``: who asks; never themselves)."""
    user = require_user(session, username)
    check_lockout(session, user, acting, delete=True)
    session.query(ApiToken).filter(ApiToken.user_id == user.id).delete()
    session.delete(user)


def list_users(session: Session) -> list[UserModel]:
    """Every user, by name."""
    return list(session.scalars(select(UserModel).order_by(UserModel.username)))


def check_credentials(session: Session, username: str, password: str) -> UserModel | None:
    """The active user with this name and password, or None (constant work either way)."""
    user = get_user(session, username)
    if user is None or not user.password_hash:
        check_password_hash(_DUMMY_HASH, password)
        return None
    if not check_password_hash(user.password_hash, password) or not user.active:
        return None
    return user


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: Session, username: str, name: str | None = None,
                 expires_days: float | None = None) -> str:
    """Make a new API token for a user and return it; only its hash is stored."""
    user = require_user(session, username)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    expires_at = utcnow() + timedelta(days=expires_days) if expires_days else None
    session.add(ApiToken(user_id=user.id, name=name, token_hash=_token_hash(token),
                         expires_at=expires_at))
    session.flush()
    return token


def user_for_token(session: Session, token: str, now: datetime | None = None) -> UserModel | None:
    """The active user owning this unexpired token, or None."""
    now = now or utcnow()
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == _token_hash(token)))
    if row is None or (row.expires_at is not None and row.expires_at <= now):
        return None
    user = session.get(UserModel, row.user_id)
    if user is None or not user.active:
        return None
    # Record use at most once a minute: a write per request would slow every API call.
    if row.last_used_at is None or now - row.last_used_at > timedelta(minutes=1):
        row.last_used_at = now
    return user


def password_fingerprint(password_hash: str | None) -> str:
    """A short digest of the password hash kept in the session to end it on password change."""
    return hashlib.sha256((password_hash or "").encode()).hexdigest()[:16]


def _as_current(user: UserModel, auth: str) -> CurrentUser:
    return CurrentUser(id=user.id, username=user.username, role=user.role, email=user.email,
                       auth=auth)


def authenticate_request() -> CurrentUser | None:
    """Who sent this request: Authorization header first (Bearer, Basic), then the session."""
    from flask import request, session

    from updraft.store.engine import session_scope

    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, value = header.partition(" ")
        scheme = scheme.lower()
        value = value.strip()
        if scheme == "bearer" and value:
            with session_scope() as db:
                user = user_for_token(db, value)
                return _as_current(user, "token") if user else None
        if scheme == "basic" and value:
            try:
                decoded = base64.b64decode(value, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return None
            username, sep, password = decoded.partition(":")
            if not sep:
                return None
            if not login_limiter.allowed(request.remote_addr or "?", username):
                return None
            with session_scope() as db:
                user = check_credentials(db, username, password)
                if user is None:
                    login_limiter.failed(request.remote_addr or "?", username)
                    from web.auth.audit import audit

                    audit("login_failed", owner=username[:500],
                          extra={"method": "basic", "remote_addr": request.remote_addr})
                    return None
                return _as_current(user, "basic")
        return None
    user_id = session.get("user_id")
    if user_id is None:
        return None
    with session_scope() as db:
        user = db.get(UserModel, user_id)
        if (user is None or not user.active
                or session.get("pw") != password_fingerprint(user.password_hash)):
            session.pop("user_id", None)
            return None
        return _as_current(user, "session")


def start_session(user: UserModel) -> None:
    """Log ``user`` in on this browser: a fresh session (new CSRF token) that expires."""
    from flask import session

    session.clear()
    session.permanent = True
    session["user_id"] = user.id
    session["pw"] = password_fingerprint(user.password_hash)
    session["login_at"] = int(time.time())
    session["csrf_token"] = secrets.token_urlsafe(32)  # a new token per login


class LoginLimiter:
    """Failed logins, in memory per web process: at most ``max_failures`` per (address,
    username) in ``window`` seconds, and ``address_failures`` per address whatever the name.

    Counting per name as well as per address means that a probe with wrong credentials, or a
    proxy that makes everyone one address, does not lock out every user at once.
    """

    def __init__(self, max_failures: int = 10, window: float = 300.0,
                 address_failures: int = 200) -> None:
        self.max_failures = max_failures
        self.address_failures = address_failures
        self.window = window
        self._failures: dict[tuple[str, str | None], deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: tuple[str, str | None], now: float) -> deque[float]:
        times = self._failures.setdefault(key, deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        return times

    def _keys(self, address: str, username: str | None) -> list[tuple[tuple, int]]:
        name = (username or "").strip().lower()
        return [((address, name), self.max_failures), ((address, None), self.address_failures)]

    def allowed(self, address: str, username: str | None = None,
                now: float | None = None) -> bool:
        """Whether this address may try to log in as ``username`` now."""
        now = time.monotonic() if now is None else now
        with self._lock:
            return all(len(self._recent(key, now)) < limit
                       for key, limit in self._keys(address, username))

    def retry_after(self, address: str, username: str | None = None,
                    now: float | None = None) -> int:
        """Seconds until this address may try again as ``username``."""
        now = time.monotonic() if now is None else now
        with self._lock:
            waits = [int(times[0] + self.window - now) + 1
                     for key, limit in self._keys(address, username)
                     if len(times := self._recent(key, now)) >= limit and times]
            return max([1, *waits]) if waits else 0

    def failed(self, address: str, username: str | None = None,
               now: float | None = None) -> None:
        """Count one failed login from this address as ``username``."""
        now = time.monotonic() if now is None else now
        with self._lock:
            for key, _limit in self._keys(address, username):
                self._recent(key, now).append(now)
            if len(self._failures) > 10_000:  # forget idle addresses
                for key in [k for k, v in self._failures.items() if not v]:
                    del self._failures[key]

    def reset(self, address: str | None = None) -> None:
        """Forget failures (of one address, or all)."""
        with self._lock:
            if address is None:
                self._failures.clear()
            else:
                for key in [k for k in self._failures if k[0] == address]:
                    del self._failures[key]


login_limiter = LoginLimiter()
