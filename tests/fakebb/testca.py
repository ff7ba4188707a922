#!/usr/bin/python3
"""Test PKI for the fake Bitbucket: a throw-away CA and a server certificate.

Everything is generated at test time with `cryptography` (Debian's python3-cryptography);
nothing is checked in.

    make_ca_and_cert(directory, hostnames=("127.0.0.1", "localhost"))
        -> {"ca": ".../ca.pem", "ca_key": ".../ca.key", "cert": ".../server.pem", "key": ".../server.key"}

    make_ca(directory, name="ca", cn="mod_bbauth test CA") -> (ca_cert_path, ca_key_path)
        A second, unrelated CA (e.g. name="other-ca", cn="untrusted test CA") is made the same way;
        a server certificate signed by it is "untrusted" for anyone that only trusts ca.pem.

    make_server_cert(directory, ca_cert_path, ca_key_path, name="server",
                     hostnames=("127.0.0.1", "localhost"), days=30, expired=False)
        -> (cert_path, key_path)
        hostnames: IP literals become iPAddress SANs, the rest dNSName SANs.  expired=True makes a
        certificate whose validity ended yesterday (for "expired certificate" tests); hostnames such as
        ("wrong.example",) make a name-mismatch certificate.

    make_rsa_keypair(directory, name="oauth1") -> (private_pem_path, public_pem_path)
        An RSA key pair in PEM (PKCS#8 private, SubjectPublicKeyInfo public), for OAuth 1.0a consumers.

CLI:  /usr/bin/python3 testca.py DIR [--hostname H ...] [--untrusted]
      writes DIR/ca.pem, DIR/ca.key, DIR/server.pem, DIR/server.key (and, with --untrusted, also
      DIR/untrusted-ca.pem and DIR/untrusted-server.pem/.key signed by an unrelated CA) and prints the paths
      as JSON.
"""

import datetime
import ipaddress
import json
import os
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["make_ca", "make_server_cert", "make_ca_and_cert", "make_untrusted_ca_and_cert",
           "make_rsa_keypair"]

_KEY_BITS = 2048


def _new_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=_KEY_BITS)


def _write(path, data, private=False):
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    fd = os.open(path, flags, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _key_pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _now():
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def make_ca(directory, name="ca", cn="mod_bbauth test CA", days=365):
    """Create a self-signed CA; returns (cert_path, key_path) = DIR/<name>.pem, DIR/<name>.key."""
    os.makedirs(directory, exist_ok=True)
    key = _new_key()
    subject = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mod_bbauth tests"),
        x509.NameAttribute(NameOID.COMMON_NAME, cn),
    ])
    now = _now()
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, key_cert_sign=True, crl_sign=True,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path = os.path.join(directory, name + ".pem")
    key_path = os.path.join(directory, name + ".key")
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    _write(key_path, _key_pem(key), private=True)
    return cert_path, key_path


def _san_entries(hostnames):
    entries = []
    for h in hostnames:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            entries.append(x509.DNSName(h))
    return entries


def make_server_cert(directory, ca_cert_path, ca_key_path, name="server",
                     hostnames=("127.0.0.1", "localhost"), days=30, expired=False):
    """Create a TLS server certificate signed by the given CA; returns (cert_path, key_path)."""
    os.makedirs(directory, exist_ok=True)
    with open(ca_cert_path, "rb") as f:
        ca_cert = x509.load_pem_x509_certificate(f.read())
    with open(ca_key_path, "rb") as f:
        ca_key = serialization.load_pem_private_key(f.read(), password=None)
    hostnames = tuple(hostnames)
    key = _new_key()
    now = _now()
    if expired:
        not_before = now - datetime.timedelta(days=30)
        not_after = now - datetime.timedelta(days=1)
    else:
        not_before = now - datetime.timedelta(days=1)
        not_after = now + datetime.timedelta(days=days)
    cn = hostnames[0] if hostnames else "fake-bitbucket"
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mod_bbauth tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                     key_encipherment=True, data_encipherment=False,
                                     key_agreement=False, key_cert_sign=False, crl_sign=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(_san_entries(hostnames)), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    cert_path = os.path.join(directory, name + ".pem")
    key_path = os.path.join(directory, name + ".key")
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    _write(key_path, _key_pem(key), private=True)
    return cert_path, key_path


def make_ca_and_cert(directory, hostnames=("127.0.0.1", "localhost")):
    """CA (ca.pem/ca.key) plus a server certificate (server.pem/server.key) for `hostnames`."""
    ca_cert, ca_key = make_ca(directory, "ca", "mod_bbauth test CA")
    cert, key = make_server_cert(directory, ca_cert, ca_key, "server", hostnames)
    return {"ca": ca_cert, "ca_key": ca_key, "cert": cert, "key": key}


def make_untrusted_ca_and_cert(directory, hostnames=("127.0.0.1", "localhost")):
    """An unrelated CA (untrusted-ca.pem) and a server cert signed by it (untrusted-server.pem/.key).
    Serve with these while the client trusts only ca.pem to test certificate verification."""
    ca_cert, ca_key = make_ca(directory, "untrusted-ca", "untrusted test CA")
    cert, key = make_server_cert(directory, ca_cert, ca_key, "untrusted-server", hostnames)
    return {"ca": ca_cert, "ca_key": ca_key, "cert": cert, "key": key}


def make_rsa_keypair(directory, name="oauth1"):
    """RSA key pair for an OAuth 1.0a consumer: DIR/<name>-private.pem (PKCS#8), DIR/<name>-public.pem."""
    os.makedirs(directory, exist_ok=True)
    key = _new_key()
    priv = os.path.join(directory, name + "-private.pem")
    pub = os.path.join(directory, name + "-public.pem")
    _write(priv, _key_pem(key), private=True)
    _write(pub, key.public_key().public_bytes(serialization.Encoding.PEM,
                                              serialization.PublicFormat.SubjectPublicKeyInfo))
    return priv, pub


def main(argv=None):
    import argparse
    ap = argparse.ArgumentParser(description="make a test CA and a server certificate")
    ap.add_argument("directory")
    ap.add_argument("--hostname", action="append", dest="hostnames",
                    help="SAN entry (repeatable; default 127.0.0.1 and localhost)")
    ap.add_argument("--untrusted", action="store_true",
                    help="also make an unrelated CA and a server certificate signed by it")
    args = ap.parse_args(argv)
    hostnames = tuple(args.hostnames or ("127.0.0.1", "localhost"))
    out = make_ca_and_cert(args.directory, hostnames)
    if args.untrusted:
        u = make_untrusted_ca_and_cert(args.directory, hostnames)
        out.update({"untrusted_" + k: v for k, v in u.items()})
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
