"""Certificates and keys for the test control plane, made with `cryptography`.

One throwaway CA signs everything: the apiserver's serving cert, the fake kubelet's serving
cert, and client certs for the admin and the controller-manager. The service-account token
key pair is separate (RSA, as kube-apiserver expects for RS256 tokens).
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALID = _dt.timedelta(days=30)


@dataclass(frozen=True)
class Pki:
    """Paths of everything `generate` writes, all PEM."""

    dir: Path

    def __getattr__(self, name: str) -> Path:  # ca_crt -> dir/ca.crt, admin_key -> dir/admin.key
        if name.startswith("_"):
            raise AttributeError(name)
        stem, _, ext = name.rpartition("_")
        if not stem or ext not in ("crt", "key", "pub"):
            raise AttributeError(name)
        return self.dir / f"{stem.replace('_', '-')}.{ext}"


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _write_crt(path: Path, crt: x509.Certificate) -> None:
    path.write_bytes(crt.public_bytes(serialization.Encoding.PEM))


def _name(cn: str, orgs: tuple[str, ...] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def _builder(subject: x509.Name, issuer: x509.Name, public_key) -> x509.CertificateBuilder:
    now = _dt.datetime.now(_dt.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(minutes=5))
        .not_valid_after(now + _VALID)
    )


def _leaf(ca_key, ca_name, cn, orgs=(), *, server_sans=None, client=False):
    key = _key()
    b = _builder(_name(cn, orgs), ca_name, key.public_key())
    b = b.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    b = b.add_extension(
        x509.KeyUsage(
            digital_signature=True, key_encipherment=False, content_commitment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=False,
            crl_sign=False, encipher_only=False, decipher_only=False,
        ),
        critical=True,
    )
    usages = []
    if server_sans is not None:
        usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
        sans = []
        for s in server_sans:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(s)))
            except ValueError:
                sans.append(x509.DNSName(s))
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if client:
        usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    b = b.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    return key, b.sign(ca_key, hashes.SHA256())


def _ca(cn: str):
    key = _key()
    name = _name(cn)
    crt = (
        _builder(name, name, key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_encipherment=False, content_commitment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return key, name, crt


def generate(directory: Path, *, service_ip: str = "10.0.0.1") -> Pki:
    """Write a fresh CA, serving/client certs and the service-account key pair."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    pki = Pki(d)

    ca_key, ca_name, ca = _ca("autotune-test-ca")
    _write_key(pki.ca_key, ca_key)
    _write_crt(pki.ca_crt, ca)

    api_sans = [
        "127.0.0.1", "localhost", service_ip, "kubernetes", "kubernetes.default",
        "kubernetes.default.svc", "kubernetes.default.svc.cluster.local",
    ]
    leaves = {
        "apiserver": dict(cn="kube-apiserver", server_sans=api_sans),
        "kubelet": dict(cn="fake-kubelet", server_sans=["127.0.0.1", "localhost"]),
        "admin": dict(cn="autotune-admin", orgs=("system:masters",), client=True),
        "controller-manager": dict(cn="system:kube-controller-manager", client=True),
        # What kube-apiserver presents when it proxies logs from the fake kubelet.
        "apiserver-kubelet-client": dict(
            cn="kube-apiserver-kubelet-client", orgs=("system:masters",), client=True
        ),
    }
    for stem, kw in leaves.items():
        key, crt = _leaf(ca_key, ca_name, **kw)
        _write_key(d / f"{stem}.key", key)
        _write_crt(d / f"{stem}.crt", crt)

    # Request-header (front-proxy) CA, separate as in real clusters: the apiserver trusts
    # X-Remote-User headers only from front-proxy-client, and delegating components
    # (controller-manager) find a complete extension-apiserver-authentication ConfigMap.
    fp_key, fp_name, fp = _ca("autotune-front-proxy-ca")
    _write_key(pki.front_proxy_ca_key, fp_key)
    _write_crt(pki.front_proxy_ca_crt, fp)
    key, crt = _leaf(fp_key, fp_name, "front-proxy-client", client=True)
    _write_key(pki.front_proxy_client_key, key)
    _write_crt(pki.front_proxy_client_crt, crt)

    sa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_key(pki.sa_key, sa)
    pki.sa_pub.write_bytes(
        sa.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return pki
