"""The mail module against a real SMTP server (aiosmtpd), the file backend and `none`."""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import policy
from email.parser import BytesParser
from pathlib import Path

import jinja2
import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from api.core.config import Settings
from api.core.mail import MailDeliveryError, Mailer, MailTemplate, build_mailer
from api.core.mail.transports import FileTransport, NullTransport, SmtpTransport
from tests.support.accounts import TEST_JWT_SECRET
from tests.support.mail import SmtpServer, html_body, link_in, smtp_server, text_body
from tests.support.servers import free_port

SENDER = "Pixelgate <no-reply@pixelgate.test>"
DASHBOARD = "https://dash.pixelgate.test"


@dataclass
class Person:
    email: str = "ann@example.com"
    name: str = "Ann <Admin> & Co"
    username: str = "ann_1"


def _smtp(server: SmtpServer, **options: object) -> SmtpTransport:
    values: dict[str, object] = {
        "username": None,
        "password": None,
        "starttls": False,
        "timeout_s": 5,
        **options,
    }
    return SmtpTransport(server.host, server.port, **values)  # type: ignore[arg-type]


def _mailer(transport: object) -> Mailer:
    return Mailer(transport, sender=SENDER, dashboard_url=DASHBOARD + "/")  # type: ignore[arg-type]


def _reset_context(mailer: Mailer, value: str = "tok_EN-123") -> dict[str, object]:
    return {
        "link": mailer.link("/reset-password", value),
        "expires_in": timedelta(minutes=30),
    }


@pytest.fixture
def server() -> Iterator[SmtpServer]:
    with smtp_server() as running:
        yield running


def test_smtp_delivers_plain_text_and_html_with_the_dashboard_link(server: SmtpServer) -> None:
    mailer = _mailer(_smtp(server))
    mailer.send(MailTemplate.PASSWORD_RESET, Person(), **_reset_context(mailer))

    (message,) = server.messages
    assert message["Subject"] == "Reset your Pixelgate password"
    assert message["From"] == SENDER
    assert message["To"].addresses[0].addr_spec == "ann@example.com"
    assert message["Message-ID"].endswith("@pixelgate.test>")
    assert message.get_content_type() == "multipart/alternative"
    link, token = link_in(message)
    assert link == f"{DASHBOARD}/reset-password?token=tok_EN-123"
    assert token == "tok_EN-123"
    assert link in html_body(message)
    assert "30 minutes" in text_body(message)


def test_html_escapes_what_the_user_chose(server: SmtpServer) -> None:
    mailer = _mailer(_smtp(server))
    mailer.send(MailTemplate.PASSWORD_CHANGED, Person())
    (message,) = server.messages
    assert "Ann &lt;Admin&gt; &amp; Co" in html_body(message)
    assert "<Admin>" not in html_body(message)
    assert "Hello Ann <Admin> & Co," in text_body(message)


NOT_ASKED = ("did not", "not you", "not ask")


@pytest.mark.parametrize("template", list(MailTemplate))
def test_every_mail_has_both_parts_and_says_what_to_do_if_not_asked_for(
    template: MailTemplate,
) -> None:
    mailer = _mailer(NullTransport())
    occurred = datetime(2026, 5, 4, 3, 2, tzinfo=UTC)
    message = mailer.compose(
        template, Person(), occurred_at=occurred, link="LINK", expires_in=timedelta(hours=48)
    )
    for body in (text_body(message), html_body(message)):
        assert "Hello Ann" in body
        assert "{{" not in body
        assert "{%" not in body
        assert any(phrase in body.lower() for phrase in NOT_ASKED), body
    if template in (MailTemplate.PASSWORD_RESET, MailTemplate.VERIFY_EMAIL):
        assert "LINK" in text_body(message)
        assert "2 days" in text_body(message)
    else:
        assert "2026-05-04 03:02 UTC" in text_body(message)
        assert f"{DASHBOARD}/forgot-password" in text_body(message)


def test_a_template_missing_a_value_fails_instead_of_sending_a_gap() -> None:
    mailer = _mailer(NullTransport())
    with pytest.raises(jinja2.UndefinedError):
        mailer.compose(MailTemplate.PASSWORD_RESET, Person(), expires_in=timedelta(minutes=30))


def test_links_carry_the_token_url_encoded_on_the_configured_dashboard() -> None:
    mailer = _mailer(NullTransport())
    assert mailer.link("/verify-email", "a+b/c=") == f"{DASHBOARD}/verify-email?token=a%2Bb%2Fc%3D"


@pytest.mark.parametrize(
    "reply", ["451 4.3.0 Mailbox busy, try again", "550 5.1.1 No such user here"]
)
def test_an_smtp_refusal_is_a_delivery_error_and_the_next_try_works(
    server: SmtpServer, reply: str
) -> None:
    mailer = _mailer(_smtp(server))
    server.refuse_next(1, reply)
    with pytest.raises(MailDeliveryError) as raised:
        mailer.send(MailTemplate.PASSWORD_RESET, Person(), **_reset_context(mailer, "secret1"))
    assert reply.split()[0] in str(raised.value)
    assert "secret1" not in str(raised.value)
    assert server.messages == []

    mailer.send(MailTemplate.PASSWORD_RESET, Person(), **_reset_context(mailer))
    assert len(server.messages) == 1


def test_an_unreachable_server_is_a_delivery_error() -> None:
    transport = SmtpTransport(
        "127.0.0.1", free_port(), username=None, password=None, starttls=False, timeout_s=2
    )
    with pytest.raises(MailDeliveryError, match="failed"):
        _mailer(transport).send(MailTemplate.PASSWORD_CHANGED, Person())


def test_starttls_required_but_not_offered_sends_nothing_in_clear_text(
    server: SmtpServer,
) -> None:
    mailer = _mailer(_smtp(server, starttls=True, username="mailer", password="pw"))
    with pytest.raises(MailDeliveryError, match="STARTTLS"):
        mailer.send(MailTemplate.PASSWORD_CHANGED, Person())
    assert server.messages == []


def _self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_starttls_then_login_against_a_server_that_requires_both(tmp_path: Path) -> None:
    cert_path, key_path = _self_signed_certificate(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert_path, key_path)
    logins: list[tuple[bytes, bytes]] = []

    def authenticator(_server, _session, _envelope, _mechanism, auth_data):  # type: ignore[no-untyped-def]
        assert isinstance(auth_data, LoginPassword)
        logins.append((auth_data.login, auth_data.password))
        # handled=False: aiosmtpd then answers a failure with 535 itself.
        return AuthResult(success=auth_data.password == b"right-password", handled=False)

    with smtp_server(
        tls_context=server_tls,
        require_starttls=True,
        auth_required=True,
        authenticator=authenticator,
    ) as server:
        trusting = ssl.create_default_context(cafile=str(cert_path))
        good = _smtp(
            server,
            starttls=True,
            username="mailer",
            password="right-password",
            tls_context=trusting,
        )
        _mailer(good).send(MailTemplate.PASSWORD_CHANGED, Person())
        assert len(server.messages) == 1
        assert logins == [(b"mailer", b"right-password")]

        wrong = _smtp(
            server, starttls=True, username="mailer", password="wrong", tls_context=trusting
        )
        with pytest.raises(MailDeliveryError, match="535"):
            _mailer(wrong).send(MailTemplate.PASSWORD_CHANGED, Person())

        # The system CA store does not know this certificate: refused before any login.
        logins_so_far = len(logins)
        untrusting = _smtp(server, starttls=True, username="mailer", password="right-password")
        with pytest.raises(MailDeliveryError, match="SSLCertVerificationError"):
            _mailer(untrusting).send(MailTemplate.PASSWORD_CHANGED, Person())
        assert len(logins) == logins_so_far
        assert len(server.messages) == 1


def test_the_file_backend_writes_one_complete_eml_per_mail(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    mailer = _mailer(FileTransport(outbox))
    mailer.send(MailTemplate.PASSWORD_RESET, Person(), **_reset_context(mailer))
    mailer.send(MailTemplate.PASSWORD_CHANGED, Person())

    files = sorted(outbox.iterdir())
    assert [f.suffix for f in files] == [".eml", ".eml"]
    first = BytesParser(policy=policy.default).parsebytes(files[0].read_bytes())
    assert first["Subject"] == "Reset your Pixelgate password"
    # Readable as stored: a developer can copy the link out of the file.
    assert f"{DASHBOARD}/reset-password?token=tok_EN-123" in files[0].read_text()


def test_the_file_backend_reports_an_unwritable_directory(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    with pytest.raises(MailDeliveryError, match="could not write"):
        _mailer(FileTransport(blocker / "outbox")).send(MailTemplate.PASSWORD_CHANGED, Person())


def _settings(**overrides: object) -> Settings:
    return Settings(_env_file=None, jwt_secret_key=TEST_JWT_SECRET, **overrides)  # type: ignore[call-arg]


def test_build_mailer_follows_mail_backend(tmp_path: Path) -> None:
    assert isinstance(build_mailer(_settings(mail_backend="none")).transport, NullTransport)
    file_mailer = build_mailer(_settings(mail_outbox_dir=tmp_path))
    assert isinstance(file_mailer.transport, FileTransport)
    assert file_mailer.transport.directory == tmp_path
    smtp = build_mailer(_settings(mail_backend="smtp", smtp_host="mail.test", smtp_port=2525))
    assert isinstance(smtp.transport, SmtpTransport)
    assert (smtp.transport.host, smtp.transport.port) == ("mail.test", 2525)
    assert build_mailer(_settings(public_dashboard_url="https://x.test/")).dashboard_url == (
        "https://x.test"
    )


def test_none_backend_drops_mail_after_composing_it(tmp_path: Path) -> None:
    mailer = build_mailer(_settings(mail_backend="none", mail_outbox_dir=tmp_path / "o"))
    mailer.send(MailTemplate.PASSWORD_CHANGED, Person())
    assert not (tmp_path / "o").exists()
    with pytest.raises(jinja2.UndefinedError):
        mailer.send(MailTemplate.VERIFY_EMAIL, Person())


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"mail_backend": "smtp"}, "SMTP_HOST"),
        ({"public_dashboard_url": "localhost:8501"}, "absolute http"),
        ({"public_dashboard_url": "https://x.test/?a=1"}, "query"),
        ({"mail_from": "nobody"}, "address"),
    ],
)
def test_mail_settings_are_checked(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _settings(**overrides)
