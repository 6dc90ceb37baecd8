"""Helpers shared by the test modules (not fixtures), one module a concern; import from the
module itself:

- `paths`: where the repository is.
- `databases`: migrations, fresh PostgreSQL/Redis databases, table helpers.
- `accounts`: sign-up and login through the API, Bearer headers, refresh cookies.
- `servers`: free ports, server processes, the live API/dashboard servers and `LiveClient`.
- `processes`: what Linux /proc says about processes (exited, children, socket holders).
- `concurrency`: releasing calls together for the one-winner races.
- `images`: image bytes, uploads, processing requests, waiting for jobs.
- `mfa`: TOTP codes as an app computes them, enrolment and the login's second step.
- `mail`: a real SMTP server (aiosmtpd) that keeps what it receives; links out of mails.
- `events`: waiting for the event relay, reading the outbox.
- `broker`: RabbitMQ vhosts, the event topology, a TCP proxy to play an outage, the consumer.
- `certificates`: a self-signed certificate for real TLS servers.
- `metrics`: scraping `/metrics` and reading values by name and labels.
"""
