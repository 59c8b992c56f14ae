"""TLS: the gateway over HTTPS, and gateway-to-wrapper gRPC over (mutual) TLS.

Certificates are made at run time by a throwaway certificate authority (trustme);
nothing is checked in.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gateway_test_support import digits_at

from ketch import ClientTls, WrapperCallError, WrapperClient, start_wrapper
from ketch_gateway import start_gateway, write_config

trustme = pytest.importorskip("trustme")


class Pki:
    """A certificate authority and the PEM files it issued, in one folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.authority = trustme.CA()
        self.ca = folder / "ca.pem"
        self.authority.cert_pem.write_to_path(str(self.ca))

    def issue(self, name: str) -> tuple[Path, Path]:
        """A certificate for 127.0.0.1 and localhost, and its key."""
        issued = self.authority.issue_cert("127.0.0.1", "localhost")
        certificate, key = self.folder / f"{name}.pem", self.folder / f"{name}.key"
        issued.cert_chain_pems[0].write_to_path(str(certificate))
        issued.private_key_pem.write_to_path(str(key))
        return certificate, key


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls_wrapper(pki: Pki, digits_model: Path) -> Iterator[Any]:
    """The digits model behind ``ketch serve`` with TLS that requires client certificates."""
    certificate, key = pki.issue("wrapper")
    arguments = ["--tls-certificate", str(certificate), "--tls-key", str(key)]
    arguments += ["--tls-client-ca", str(pki.ca)]
    with start_wrapper("sklearn", digits_model, name="digits", extra_args=arguments) as wrapper:
        yield wrapper


def test_a_wrapper_with_mutual_tls_refuses_callers_without_a_certificate(
    pki: Pki, tls_wrapper: Any
) -> None:
    certificate, key = pki.issue("gateway-client")
    with WrapperClient(
        tls_wrapper.address, tls=ClientTls(pki.ca, certificate, key), timeout=20
    ) as client:
        assert client.model_metadata().name == "digits"
    with (
        WrapperClient(tls_wrapper.address, tls=ClientTls(pki.ca), timeout=5) as anonymous,
        pytest.raises(WrapperCallError),
    ):
        anonymous.model_metadata()
    with (
        WrapperClient(tls_wrapper.address, timeout=5) as plaintext,
        pytest.raises(WrapperCallError),
    ):
        plaintext.model_metadata()


def test_the_gateway_serves_https_and_reaches_wrappers_over_mutual_tls(
    tmp_path: Path, pki: Pki, tls_wrapper: Any, digits: Any, digits_classifier: Any
) -> None:
    server_certificate, server_key = pki.issue("gateway")
    client_certificate, client_key = pki.issue("gateway-client")
    settings = f"""
  [gateway.tls]
  certificate = "{server_certificate}"
  key = "{server_key}"

  [gateway.wrapper_tls]
  ca = "{pki.ca}"
  certificate = "{client_certificate}"
  key = "{client_key}"
"""
    config = write_config(tmp_path, digits_at(tls_wrapper.address, gateway=settings))
    rows, _ = digits
    with start_gateway(config) as gateway:
        assert gateway.url.startswith("https://127.0.0.1:")
        verified = ssl.create_default_context(cafile=str(pki.ca))
        with httpx.Client(base_url=gateway.url, verify=verified) as client:
            answer = client.post("/apps/digits/predict", json={"input": rows[3].tolist()})
            assert answer.status_code == 200, answer.text
            assert answer.json()["output"] == int(digits_classifier.predict(rows[3:4])[0])
        with pytest.raises(httpx.ConnectError):
            httpx.get(gateway.url + "/v2/health/live")  # not trusted without the CA
        with pytest.raises(httpx.RemoteProtocolError):
            httpx.get(gateway.url.replace("https", "http") + "/v2/health/live")


def test_the_gateway_can_require_client_certificates(tmp_path: Path, pki: Pki) -> None:
    certificate, key = pki.issue("gateway")
    client_certificate, client_key = pki.issue("client")
    config = write_config(
        tmp_path,
        f"""
[gateway.tls]
certificate = "{certificate}"
key = "{key}"
client_ca = "{pki.ca}"
""",
    )
    with start_gateway(config) as gateway:
        trusting = ssl.create_default_context(cafile=str(pki.ca))
        with pytest.raises((httpx.ReadError, httpx.ConnectError, httpx.RemoteProtocolError)):
            httpx.get(gateway.url + "/v2/health/live", verify=trusting)
        identified = ssl.create_default_context(cafile=str(pki.ca))
        identified.load_cert_chain(str(client_certificate), str(client_key))
        assert httpx.get(gateway.url + "/v2/health/live", verify=identified).status_code == 200
