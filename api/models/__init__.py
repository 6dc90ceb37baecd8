"""All models, imported here so `Base.metadata` knows every table (Alembic and tests use it)."""

from api.models.account_token import AccountToken, TokenPurpose
from api.models.api_key import ApiKey
from api.models.audit import AuditEntry
from api.models.base import Base, utcnow
from api.models.event import EventState, HandledEvent, OutboxEvent
from api.models.image import Image
from api.models.job import Job, JobStatus
from api.models.login_event import LoginEvent, LoginFailure
from api.models.mfa import MfaChallenge, RecoveryCode, TotpCredential
from api.models.server_instance import ServerInstance
from api.models.session import AuthSession, RefreshToken
from api.models.user import Role, User

__all__ = [
    "AccountToken",
    "ApiKey",
    "AuditEntry",
    "AuthSession",
    "Base",
    "EventState",
    "HandledEvent",
    "Image",
    "Job",
    "JobStatus",
    "LoginEvent",
    "LoginFailure",
    "MfaChallenge",
    "OutboxEvent",
    "RecoveryCode",
    "RefreshToken",
    "Role",
    "ServerInstance",
    "TokenPurpose",
    "TotpCredential",
    "User",
    "utcnow",
]
