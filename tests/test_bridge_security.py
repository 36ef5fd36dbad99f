"""Security of the bridge on a real loopback server: token, TLS, client certificates, limits."""
import shutil
import subprocess

import numpy as np
import pytest

from liquidedge.bridge import protocol as proto
from liquidedge.bridge.protocol import APPLIED, REJECTED, make_embedding
from liquidedge.bridge.server import read_token, start_server
from liquidedge.bridge.transport import GrpcTransport
from liquidedge.errors import BridgeError, ConfigError
from liquidedge.ir import random_model

TOKEN = "s3cret-token-for-tests-0123456789"
DIM = 32


@pytest.fixture(scope="module")
def model():
    return random_model(seed=61)


@pytest.fixture(scope="module")
def plain_server(model):
    handle = start_server(model, "127.0.0.1:0", backend="numpy", token=TOKEN)
    yield handle
    handle.stop(0)


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A throw-away CA, a server certificate for localhost/127.0.0.1 and a client certificate."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make test certificates")
    d = tmp_path_factory.mktemp("pki")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "1",
             "-subj", "/CN=liquidedge test CA", cwd=d)
    (d / "server.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for who in ("server", "client"):
        _openssl("req", *ec, "-keyout", f"{who}.key", "-out", f"{who}.csr", "-subj", f"/CN={who}", cwd=d)
        _openssl("x509", "-req", "-in", f"{who}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", f"{who}.pem", "-days", "1", "-extfile", f"{who}.ext", cwd=d)
    _openssl("req", "-x509", *ec, "-keyout", "other.key", "-out", "other.pem", "-days", "1",
             "-subj", "/CN=someone else", cwd=d)
    return d


def _one(dim=DIM, seq=1):
    return make_embedding("dev", seq, np.linspace(-1, 1, dim))


def test_wrong_or_missing_token_gets_nothing(plain_server):
    for token in ("wrong-token-000000000000", None):
        t = GrpcTransport(plain_server.address, token=token)
        with pytest.raises(proto.BridgeAuthError, match="bearer token") as info:
            t.exchange([_one()], timeout=5)
        assert not isinstance(info.value, proto.HostUnavailableError)
        with pytest.raises(proto.BridgeAuthError):
            t.info(5)
        t.close()
    assert plain_server.service.stats.applied == 0 and plain_server.service.stats.rejected == 0
    ok = GrpcTransport(plain_server.address, token=TOKEN)
    assert ok.exchange([_one()], timeout=5)[0].status == APPLIED
    ok.close()


def test_wrong_length_and_non_finite_vectors_are_rejected_with_the_reason(plain_server):
    t = GrpcTransport(plain_server.address, token=TOKEN)
    bad_len = _one(dim=DIM + 1, seq=50)
    nan = _one(seq=51)
    nan.vector[7] = float("nan")
    out = t.exchange([bad_len, nan, _one(seq=52)], timeout=5)
    assert out[0].status == REJECTED and "33 values" in out[0].detail
    assert out[1].status == REJECTED and "non-finite value at index 7" in out[1].detail
    assert out[2].status == APPLIED                      # the stream stays open
    t.close()


def test_oversize_message_is_refused(plain_server):
    t = GrpcTransport(plain_server.address, token=TOKEN)
    huge = _one(dim=200_000, seq=60)                      # ~800 kB, far above the limit
    with pytest.raises(BridgeError, match="RESOURCE_EXHAUSTED"):
        t.exchange([huge], timeout=5)
    assert t.exchange([_one(seq=61)], timeout=5)[0].status == APPLIED  # a fresh stream works
    t.close()


def test_malformed_bytes_end_the_stream_with_invalid_argument(plain_server):
    import grpc

    with grpc.insecure_channel(plain_server.address) as channel:
        call = channel.stream_stream(proto.EXCHANGE)       # raw bytes, no serialiser
        with pytest.raises(grpc.RpcError) as info:
            list(call(iter([b"\xff\xff\xff\xff"]), timeout=5, metadata=proto.bearer(TOKEN)))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "not a valid Embedding" in info.value.details()
        with pytest.raises(grpc.RpcError) as info:          # and without a token: nothing at all
            list(call(iter([b"\xff\xff\xff\xff"]), timeout=5))
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_tls_with_token_round_trips_and_plaintext_or_untrusted_clients_fail(model, pki):
    handle = start_server(model, "127.0.0.1:0", backend="numpy", token=TOKEN,
                          tls_cert=pki / "server.pem", tls_key=pki / "server.key")
    try:
        good = GrpcTransport(handle.address, token=TOKEN, root_cert=pki / "ca.pem")
        assert good.exchange([_one()], timeout=5)[0].status == APPLIED
        assert good.info(5).embedding_dim == DIM
        good.close()
        for t in (GrpcTransport(handle.address, token=TOKEN),                         # plaintext
                  GrpcTransport(handle.address, token=TOKEN, root_cert=pki / "other.pem")):  # untrusted
            with pytest.raises(proto.HostUnavailableError):
                t.exchange([_one(seq=2)], timeout=3)
            t.close()
        bad_token = GrpcTransport(handle.address, token="nope-nope-nope-nope", root_cert=pki / "ca.pem")
        with pytest.raises(proto.BridgeAuthError):
            bad_token.exchange([_one(seq=2)], timeout=5)
        bad_token.close()
        assert handle.service.stats.applied == 1
    finally:
        handle.stop(0)


def test_client_certificates_are_required_when_a_client_ca_is_given(model, pki):
    handle = start_server(model, "127.0.0.1:0", backend="numpy", token=TOKEN,
                          tls_cert=pki / "server.pem", tls_key=pki / "server.key", client_ca=pki / "ca.pem")
    try:
        anonymous = GrpcTransport(handle.address, token=TOKEN, root_cert=pki / "ca.pem")
        with pytest.raises(proto.HostUnavailableError):
            anonymous.exchange([_one()], timeout=3)
        anonymous.close()
        stranger = GrpcTransport(handle.address, token=TOKEN, root_cert=pki / "ca.pem",
                                 client_cert=pki / "other.pem", client_key=pki / "other.key")
        with pytest.raises(proto.HostUnavailableError):
            stranger.exchange([_one()], timeout=3)
        stranger.close()
        member = GrpcTransport(handle.address, token=TOKEN, root_cert=pki / "ca.pem",
                               client_cert=pki / "client.pem", client_key=pki / "client.key")
        assert member.exchange([_one()], timeout=5)[0].status == APPLIED
        member.close()
    finally:
        handle.stop(0)


def test_unsafe_configurations_are_refused(model, tmp_path, pki):
    with pytest.raises(ConfigError, match="without TLS"):
        start_server(model, "0.0.0.0:0", backend="numpy")
    with pytest.raises(ConfigError, match="both a certificate and its key"):
        start_server(model, "127.0.0.1:0", backend="numpy", tls_cert=pki / "server.pem")
    with pytest.raises(ConfigError, match="client certificates need TLS"):
        start_server(model, "127.0.0.1:0", backend="numpy", client_ca=pki / "ca.pem")
    short = tmp_path / "short"
    short.write_text("abc\n")
    with pytest.raises(ConfigError, match="at least 16"):
        read_token(short)
    with pytest.raises(ConfigError, match="cannot read"):
        read_token(tmp_path / "missing")
    with pytest.raises(ConfigError, match="client certificates need TLS"):
        GrpcTransport("127.0.0.1:1", client_cert=pki / "client.pem", client_key=pki / "client.key")
