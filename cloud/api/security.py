"""Bearer-token authentication (OAuth2 password flow) and role checks as FastAPI dependencies."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordBearer

from cloud.auth import User
from cloud.service import CloudService, wall_ms

oauth2 = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token")


def service(request: Request) -> CloudService:
    """Return the app's cloud service."""
    svc: CloudService = request.app.state.service
    return svc


Service = Annotated[CloudService, Depends(service)]


def current_user(svc: Service, token: Annotated[str, Depends(oauth2)]) -> User:
    """Return the user of a live bearer token, or answer 401."""
    user = svc.auth.user_for_token(token, wall_ms())
    if user is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "invalid or expired token", headers={"WWW-Authenticate": "Bearer"}
        )
    return user


def require(*roles: str) -> Callable[[User], User]:
    """A dependency that lets only users with one of `roles` through (403 otherwise)."""

    def check(user: Annotated[User, Depends(current_user)]) -> User:
        if user.role not in roles:
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"role {user.role!r} may not do this")
        return user

    return check
