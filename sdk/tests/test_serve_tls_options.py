"""``ketch serve``'s TLS options: incomplete ones are refused before anything starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from ketch.cli import main

REFERENCE = "ketch_conformance.reference:plugin"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--tls-key", "k.pem"], "--tls-certificate and --tls-key go together"),
        (["--tls-certificate", "c.pem"], "--tls-certificate and --tls-key go together"),
        (["--tls-client-ca", "ca.pem"], "--tls-client-ca needs --tls-certificate and --tls-key"),
    ],
)
def test_incomplete_tls_options_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], options: list[str], message: str
) -> None:
    model = tmp_path / "model.npz"
    model.write_bytes(b"")
    assert main(["serve", REFERENCE, str(model), "--port", "0", *options]) == 2
    assert message in capsys.readouterr().err


def test_unreadable_certificates_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "model.npz"
    model.write_bytes(b"")
    missing = str(tmp_path / "missing.pem")
    arguments = ["serve", REFERENCE, str(model), "--port", "0"]
    assert main([*arguments, "--tls-certificate", missing, "--tls-key", missing]) == 2
    assert "cannot read the TLS certificate" in capsys.readouterr().err
