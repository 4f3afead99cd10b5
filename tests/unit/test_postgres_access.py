"""The team's ``pg_hba.conf``, as written at each start: the superuser from loopback only, each role to its own
database from anywhere, every TCP connection by scram-sha-256 password, nothing trusted."""

from __future__ import annotations

from vqa_distill.ops.postgres_access import DatabaseGrant, hba_conf
from vqa_distill.ops.team import postgres_grants

LOOPBACK = {"127.0.0.1/32", "::1/128"}


def _rules() -> list[list[str]]:
    return [line.split() for line in hba_conf(postgres_grants()).splitlines() if line and not line.startswith("#")]


def test_only_loopback_lets_any_role_in_and_each_role_reaches_its_own_database_from_elsewhere() -> None:
    hosts = [rule for rule in _rules() if rule[0] == "host"]
    beyond = [(database, user, net) for _, database, user, net, _ in hosts if net not in LOOPBACK]
    assert sorted(beyond) == sorted(
        [(db, role, net) for db, role in (("prefect", "vqa_prefect"), ("ledger", "vqa_ledger")) for net in ("0.0.0.0/0", "::/0")]
    )
    assert not [rule for rule in hosts if rule[3] not in LOOPBACK and "postgres" in (rule[1], rule[2], "all")]
    assert {rule[-1] for rule in hosts} == {"scram-sha-256"}
    assert {rule[-1] for rule in _rules() if rule[0] == "local"} == {"peer"}  # the OS user's own name on the socket


def test_the_roles_are_the_databases_own() -> None:
    prefect, ledger = postgres_grants()
    assert prefect == DatabaseGrant("prefect", "vqa_prefect") and ledger == DatabaseGrant("ledger", "vqa_ledger")
    assert "trust" not in hba_conf([prefect, ledger])
