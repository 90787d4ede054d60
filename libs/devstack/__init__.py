"""The local development stack: embedded Postgres, Kafka (Tansu) and an SMTP sink, plus the `make run`
supervisor that starts them and the five services.

Import the submodules directly (`libs.devstack.pg`, `.kafka`, `.smtp_sink`, `.run`); nothing is
re-exported here so that importing one server does not pull in the others' dependencies.
"""
