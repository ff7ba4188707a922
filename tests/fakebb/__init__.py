"""Fake Bitbucket Data Center (fake_bitbucket.py) and test PKI (testca.py) for mod_bbauth tests."""
