"""Fixtures for the preflight checks: the fake GitHub over HTTP, generated RC evidence and a
real paybox ledger database."""

from __future__ import annotations

import pytest

from tests.support import pg
from tests.support.preflight import fakegithub, ledger_db, make_evidence

V2 = "318782fdabd867683bce22dc62c35692d08405ea"
V1 = "e7b5929755b760f301e10623f347a6f9ce507b9e"


@pytest.fixture
def gh():
    srv = fakegithub().serve(0, {"tags": {"v2": {"commit": V2, "annotated": True, "depth": 2},
                                           "v1": {"commit": V1, "annotated": False}},
                                  "token": "ghp_faketoken0123456789abcd"})
    srv.url = f"http://127.0.0.1:{srv.server_port}"
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def evidence(tmp_path):
    return make_evidence(tmp_path / "build", {"v1": V1, "v2": V2})


@pytest.fixture
def ledger():
    name, url = ledger_db(rows=300)
    yield url
    pg.drop_database(name)
