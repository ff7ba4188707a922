#!/usr/bin/python3
"""The demo's upstream app: shows what mod_bbauth handed over (REMOTE_USER and the BITBUCKET_* variables)."""
import html
import os

FIELDS = ("REMOTE_USER", "AUTH_TYPE", "BITBUCKET_USER", "BITBUCKET_NAME", "BITBUCKET_EMAIL", "BITBUCKET_ID")
rows = "".join(f"<tr><th>{name}</th><td>{html.escape(os.environ.get(name, ''))}</td></tr>" for name in FIELDS)
print("Content-Type: text/html; charset=utf-8")
print("Cache-Control: no-store")
print()
print(f"<!doctype html><title>Who am I?</title><h1>What the upstream app receives</h1><table>{rows}</table>"
      '<p><a href="/packages/">Packages</a> &middot; <a href="/logout">Log out</a></p>')
