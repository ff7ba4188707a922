"""Issue 2: the OAuth 2 browser login through a real Apache and the strict fake Bitbucket DC."""

import base64
import hashlib
import json

import jwt
import pytest

import bbsite
from bbsite import query_of


def test_full_login_sets_identity_for_upstream(site):
    s = site.session()
    r = site.login(s, "/packages/echo?x=1", user="alice")
    assert r.headers["Location"] == "/packages/echo?x=1"
    echo = site.echo(s)
    assert echo["remote_user"] == "alice"
    assert echo["auth_type"] == "Bitbucket"
    h = {k.lower(): v for k, v in echo["headers"].items()}
    assert h["x-bitbucket-user"] == "alice"
