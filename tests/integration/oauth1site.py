"""The protected site of bbsite.py with BBAuthOAuthVersion 1: the fake Bitbucket knows an OAuth 1.0a consumer
(CONSUMER_KEY, the public half of a key pair made per test) besides the OAuth 2 client, so that one site can be
switched between the versions.

    site = make_oauth1_site(site_factory, tmp_serverroot)     # started, OAuth 1; site.oauth1_key: private key path
    site.login(s, "/packages/echo", user="alice")             # bbsite's browser flow works for both versions
    site.apache.restart(extra_conf=bbsite.protected_conf(site))   # the same site with OAuth 2
"""

import bbsite
import testca

CONSUMER_KEY = "mirror-consumer-key"
AUTHORIZE_PATH = "/plugins/servlet/oauth/authorize"


def oauth1_conf(site, private_key=None, consumer_key=CONSUMER_KEY):
    """bbsite.protected_conf(site) with OAuth 1 instead of OAuth 2 (no client secret)."""
    return bbsite.protected_conf(site).replace(
        f"BBAuthClientID {bbsite.CLIENT_ID}\nBBAuthClientSecret {bbsite.CLIENT_SECRET}\n",
        f"BBAuthOAuthVersion 1\nBBAuthClientID {consumer_key}\n"
        f"BBAuthOAuth1PrivateKey {private_key or site.oauth1_key}\n")


def make_oauth1_site(site_factory, tmp_serverroot, conf=oauth1_conf, public_key=None, **kw):
    """A site whose Apache speaks OAuth 1. The fake registers `public_key` (a PEM file; default: the public half of
    the Apache's key), so another file there makes every signature wrong."""
    private, public = testca.make_rsa_keypair(str(tmp_serverroot / "oauth1"))

    def render(site):
        site.oauth1_key = private
        return conf(site)
    site = site_factory(conf=render, fake_opts={"oauth1_consumer_key": CONSUMER_KEY,
                                                "oauth1_public_key": public_key or public}, **kw)
    site.oauth1_key = private
    site.oauth1_public_key = public
    return site
