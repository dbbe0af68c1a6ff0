"""The TLS programs end to end: ucspi-tlsd under tcpserver, ucspi-tlsc
under tcpclient, the sslserver/sslclient front ends, update_tmprsadh and
mkcert.

The peers are independent: Python's ssl module as the TLS client of
ucspi-tlsd and as the TLS server for ucspi-tlsc. A small Python program
plays the application side of UCSPI-TLS (it writes 'Y', reads the block,
reports what it saw as one JSON line, then echoes). Certificates come
from a test CA made with the openssl command line once per session.
Every test checks that no process is left behind.
"""

import json
import os
import pwd
import select
import shutil
import smtplib
import socket
import ssl
import stat
import subprocess
import threading
import time

import pytest

import qmtest
from qmtest import wait_for

PY = "/usr/bin/python3"
MB = 1024 * 1024
TLS_PROGRAMS = {"ucspi-tlsd", "ucspi-tlsc", "sslserver", "sslclient"}

# The application side of ucspi-tlsd: argv[1] is delayed or immediate,
# argv[2] what to do once TLS runs. Its stderr goes to the server log.
SERVER_APP = r'''
import json, os, sys

def write_all(fd, data):
    while data:
        data = data[os.write(fd, data):]

def read_line(fd):
    line = b""
    while not line.endswith(b"\n"):
        c = os.read(fd, 1)
        if not c:
            break
        line += c
    return line

def read_block(fd):
    data = b""
    while not (data == b"\0" or data.endswith(b"\0\0")):
        chunk = os.read(fd, 4096)
        if not chunk:
            return None
        data += chunk
    block = {}
    for entry in data.split(b"\0"):
        if entry:
            name, sep, value = entry.partition(b"=")
            block[name.decode()] = value.decode() if sep else None
    return block

def log(text):
    sys.stderr.write("tlsapp: %s\n" % text)
    sys.stderr.flush()

mode, action = sys.argv[1], sys.argv[2]
block = None
if mode == "delayed":
    read_line(0)
    if action == "decline":
        write_all(1, b"NO TLS\r\n")
        log("declined")
        sys.exit(3)
    write_all(1, b"220 go ahead\r\n")
    ctl = int(os.environ["SSLCTLFD"])
    write_all(ctl, b"y" if action == "lower" else b"Y")
    if action != "lower":
        block = read_block(ctl)
        if block is None:
            log("no block")
            sys.exit(4)
    rfd = int(os.environ["SSLREADFD"])
    wfd = int(os.environ["SSLWRITEFD"])
else:
    rfd, wfd = 0, 1
info = {"block": block, "env": dict(os.environ), "uid": os.getuid(),
        "euid": os.geteuid(), "gid": os.getgid(), "egid": os.getegid(),
        "groups": os.getgroups(), "pid": os.getpid(), "ppid": os.getppid()}
write_all(wfd, (json.dumps(info) + "\n").encode())
if action in ("echo", "lower"):
    total = 0
    while True:
        data = os.read(rfd, 65536)
        if not data:
            break
        total += len(data)
        write_all(wfd, data)
    log("EOF after %d bytes" % total)
elif action == "quit":
    read_line(rfd)
    write_all(wfd, b"BYE\n")
    log("quit")
'''

# The application side of ucspi-tlsc, on fds 6 and 7. It prints one
# JSON line on stdout.
CLIENT_APP = r'''
import json, os, sys

def write_all(fd, data):
    while data:
        data = data[os.write(fd, data):]

def read_line(fd):
    line = b""
    while not line.endswith(b"\n"):
        c = os.read(fd, 1)
        if not c:
            break
        line += c
    return line

def read_block(fd):
    data = b""
    while not (data == b"\0" or data.endswith(b"\0\0")):
        chunk = os.read(fd, 4096)
        if not chunk:
            return None
        data += chunk
    block = {}
    for entry in data.split(b"\0"):
        if entry:
            name, sep, value = entry.partition(b"=")
            block[name.decode()] = value.decode() if sep else None
    return block

block = None
if sys.argv[1] == "delayed":
    read_line(6)
    write_all(7, b"STARTTLS\r\n")
    read_line(6)
    ctl = int(os.environ["SSLCTLFD"])
    write_all(ctl, b"Y")
    block = read_block(ctl)
    if block is None:
        print(json.dumps({"failed": True}))
        sys.exit(4)
    rfd = int(os.environ["SSLREADFD"])
    wfd = int(os.environ["SSLWRITEFD"])
else:
    rfd, wfd = 6, 7
write_all(wfd, b"hello over tls\n")
answer = read_line(rfd)
print(json.dumps({"block": block, "env": dict(os.environ),
                  "answer": answer.decode(errors="replace")}))
'''


# ---- certificates ----


def run_openssl(args, cwd):
    result = subprocess.run(["openssl"] + args, cwd=cwd,
                            capture_output=True, timeout=120)
    assert result.returncode == 0, result.stderr.decode(errors="replace")


def make_leaf(d, name, subject, ext, serial, ca="ca", rsa=False):
    """name.key, name.crt and name.pem (certificate, then key)."""
    if rsa:
        key = ["-newkey", "rsa:2048"]
    else:
        key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
    run_openssl(["req", "-new", "-nodes"] + key + [
        "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject],
        d)
    (d / f"{name}.ext").write_text(ext)
    run_openssl(["x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt",
                 "-CAkey", f"{ca}.key", "-set_serial", str(serial),
                 "-days", "3", "-out", f"{name}.crt", "-extfile",
                 f"{name}.ext"], d)
    (d / f"{name}.pem").write_bytes((d / f"{name}.crt").read_bytes()
                                    + (d / f"{name}.key").read_bytes())


def make_ca(d, name, cn):
    run_openssl(["req", "-x509", "-nodes", "-newkey", "ec", "-pkeyopt",
                 "ec_paramgen_curve:prime256v1", "-keyout", f"{name}.key",
                 "-out", f"{name}.crt", "-days", "3", "-subj", f"/CN={cn}",
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign"], d)


def make_crl(d, revoked):
    """ca.crl: the CA's CRL, revoking the certificate `revoked`."""
    (d / "index.txt").write_text("")
    (d / "crlnumber").write_text("01\n")
    (d / "ca.cnf").write_text(
        "[ca]\ndefault_ca = test\n[test]\ndatabase = index.txt\n"
        "crlnumber = crlnumber\ndefault_md = sha256\n"
        "default_crl_days = 3\n")
    common = ["-config", "ca.cnf", "-keyfile", "ca.key", "-cert", "ca.crt"]
    run_openssl(["ca"] + common + ["-revoke", f"{revoked}.crt"], d)
    run_openssl(["ca"] + common + ["-gencrl", "-out", "ca.crl"], d)


SERVER_EXT = "extendedKeyUsage=serverAuth\n"


@pytest.fixture(scope="session")
def pki(qm_session_dir):
    """Paths of the test CAs and certificates, by name."""
    d = qm_session_dir / "pki"
    d.mkdir(mode=0o755)
    make_ca(d, "ca", "QM Test CA")
    make_ca(d, "otherca", "QM Other CA")
    make_leaf(d, "server", "/CN=localhost",
              SERVER_EXT + "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
              0x1001, rsa=True)
    make_leaf(d, "wild", "/CN=*.example.test",
              SERVER_EXT + "subjectAltName=DNS:*.example.test\n", 0x1002)
    make_leaf(d, "wrong", "/CN=wrong.example.test",
              SERVER_EXT + "subjectAltName=DNS:wrong.example.test\n", 0x1003)
    make_leaf(d, "cnonly", "/CN=cn.example.test", SERVER_EXT, 0x1004)
    make_leaf(d, "sanother", "/CN=localhost",
              SERVER_EXT + "subjectAltName=DNS:other.example.test\n", 0x1005)
    make_leaf(d, "client", "/CN=client.example.test/"
              "emailAddress=client@example.test",
              "extendedKeyUsage=clientAuth\n", 0x12AB)
    make_leaf(d, "sanmail", "/CN=sanmail.example.test",
              "extendedKeyUsage=clientAuth\n"
              "subjectAltName=email:alt@example.test\n", 0x12AC)
    make_leaf(d, "stranger", "/CN=stranger.example.test",
              "extendedKeyUsage=clientAuth\n", 0x12AD, ca="otherca")
    make_leaf(d, "revoked", "/CN=revoked.example.test",
              "extendedKeyUsage=clientAuth\n", 0x12AE)
    make_crl(d, "revoked")
    run_openssl(["dhparam", "-dsaparam", "-out", "dh.pem", "2048"], d)
    run_openssl(["dhparam", "-dsaparam", "-out", "dh1024.pem", "1024"], d)
    for entry in d.iterdir():
        entry.chmod(0o644)
    return {p.name.replace(".", "_"): p for p in d.iterdir()} | {
        "dir": d, "ca": d / "ca.crt", "otherca": d / "otherca.crt"}


@pytest.fixture(scope="session")
def apps(qm_session_dir):
    d = qm_session_dir / "tlsapps"
    d.mkdir(mode=0o755)
    (d / "server_app.py").write_text(SERVER_APP)
    (d / "client_app.py").write_text(CLIENT_APP)
    for entry in d.iterdir():
        entry.chmod(0o755)
    return {"server": str(d / "server_app.py"),
            "client": str(d / "client_app.py")}


# ---- helpers ----


class Lines:
    """Line reading over a socket without reading past what is asked
    for when the socket is still cleartext."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def line(self):
        while b"\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError(f"EOF after {self.buf!r}")
            self.buf += data
        line, _, self.buf = self.buf.partition(b"\n")
        return line + b"\n"

    def exactly(self, n):
        while len(self.buf) < n:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError(f"EOF after {len(self.buf)} of {n} bytes")
            self.buf += data
        out, self.buf = self.buf[:n], self.buf[n:]
        return out


def exchange(tls, lines, payload, timeout=60):
    """Sends payload while reading as many bytes back, in one thread: an
    SSL object must never be used by two threads at once."""
    received = bytearray(lines.buf)
    lines.buf = b""
    sent = 0
    deadline = time.monotonic() + timeout
    tls.setblocking(False)
    try:
        while len(received) < len(payload):
            assert time.monotonic() < deadline, f"{len(received)} echoed"
            moved = False
            if sent < len(payload):
                try:
                    sent += tls.send(payload[sent:sent + 16384])
                    moved = True
                except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
                    pass
            try:
                data = tls.recv(65536)
                if not data:
                    raise EOFError(f"EOF after {len(received)} bytes")
                received += data
                moved = True
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                pass
            if not moved:
                select.select([tls], [tls] if sent < len(payload) else [],
                              [], 1)
    finally:
        tls.setblocking(True)
    return bytes(received)


def cleartext_line(sock):
    line = b""
    while not line.endswith(b"\n"):
        c = sock.recv(1)
        if not c:
            break
        line += c
    return line


def client_context(pki, maximum=None, cert=None):
    ctx = ssl.create_default_context(cafile=str(pki["ca"]))
    if maximum is not None:
        ctx.maximum_version = maximum
    if cert is not None:
        ctx.load_cert_chain(str(cert))
    return ctx


def tlsd_env(bindir, pki, **extra):
    env = qmtest.program_env(bindir)
    for name in ("CERTFILE", "KEYFILE", "CCAFILE", "CAFILE", "CADIR",
                 "DHFILE", "CIPHERS", "SSL_UID", "SSL_GID", "SSL_CHROOT",
                 "TLS_SERVERNAME", "CRLFILE"):
        env.pop(name, None)
    env["CERTFILE"] = str(pki["server_pem"])
    for name, value in extra.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = str(value)
    return env


def start_tlsd(servers, bindir, pki, apps, opts=(), mode="delayed",
               action="echo", **env):
    argv = ([str(bindir / "ucspi-tlsd")] + list(opts)
            + [PY, apps["server"], mode, action])
    return servers.start(argv, env=tlsd_env(bindir, pki, **env),
                         name="ucspi-tlsd", tcpserver_opts=["-v"])


def starttls(server, ctx, hostname="localhost"):
    """Connects, asks for TLS in cleartext and returns the TLS socket
    and a line reader over it."""
    raw = server.connect()
    raw.sendall(b"STARTTLS\r\n")
    assert cleartext_line(raw) == b"220 go ahead\r\n"
    tls = ctx.wrap_socket(raw, server_hostname=hostname,
                          suppress_ragged_eofs=False)
    return tls, Lines(tls)


def implicit_tls(server, ctx, hostname="localhost"):
    raw = server.connect()
    tls = ctx.wrap_socket(raw, server_hostname=hostname,
                          suppress_ragged_eofs=False)
    return tls, Lines(tls)


def info_of(lines):
    return json.loads(lines.line())


def only_tcpserver_left(server):
    sid = server.proc.pid
    return not [pid for pid, _ in qmtest.session_members(sid) if pid != sid]


def wait_no_children(server, timeout=10):
    wait_for(lambda: only_tcpserver_left(server), timeout=timeout,
             message="the connection's processes to end")


def proc_ids(pid):
    """{'Uid': [...], 'Gid': [...], 'Groups': [...]} from /proc."""
    ids = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("Uid", "Gid", "Groups"):
                ids[key] = [int(v) for v in value.split()]
    return ids


def end_status(server, pid):
    """The exit status tcpserver -v logged for the child pid."""
    for line in server.log_text().splitlines():
        if line.startswith(f"tcpserver: end {pid} status "):
            return int(line.rsplit(" ", 1)[1])
    return None


def tcpserver_child_pids(server):
    return [int(line.split()[2]) for line in server.log_text().splitlines()
            if line.startswith("tcpserver: pid ")]


def root_only():
    return pytest.mark.skipif(not qmtest.is_root(), reason="needs root")


# ---- ucspi-tlsd ----


@pytest.mark.parametrize("maximum,protocol", [
    (None, "TLSv1.3"), (ssl.TLSVersion.TLSv1_2, "TLSv1.2")],
    ids=["tls13", "tls12"])
def test_tlsd_delayed_block_and_echo(servers, bindir, pki, apps, maximum,
                                     protocol):
    server = start_tlsd(servers, bindir, pki, apps, ["-n"])
    tls, lines = starttls(server, client_context(pki, maximum))
    info = info_of(lines)
    block, env = info["block"], info["env"]
    assert tls.version() == protocol
    assert block["SSL_PROTOCOL"] == protocol
    assert block["SSL_CIPHER"] == tls.cipher()[0]
    assert block["SSL_CIPHER_USEKEYSIZE"] == str(tls.cipher()[2])
    if protocol == "TLSv1.3":
        assert block["SSL_CIPHER"] == "TLS_AES_256_GCM_SHA384"
        assert block["SSL_CIPHER_USEKEYSIZE"] == "256"
    else:
        assert block["SSL_CIPHER"] == "ECDHE-RSA-AES256-GCM-SHA384"
    assert block["SSL_CLIENT_VERIFY"] == "NONE"
    for name in ("SSL_CLIENT_S_DN", "SSL_CLIENT_S_DN_CN",
                 "SSL_CLIENT_S_DN_Email", "SSL_CLIENT_I_DN",
                 "SSL_CLIENT_M_SERIAL"):
        assert name in block and block[name] is None  # an unset entry
    # The three descriptors, and the SSL* twins of the TCP variables.
    assert env["SSLREADFD"] == env["SSLWRITEFD"]
    assert int(env["SSLCTLFD"]) >= 3 and int(env["SSLREADFD"]) >= 3
    assert env["SSLREMOTEIP"] == env["TCPREMOTEIP"]
    assert env["SSLLOCALPORT"] == str(server.port)
    assert env["SSLLOCALHOST"] == "example.test"
    assert "SSL_PROTOCOL" not in env  # the block is the app's to apply
    tls.sendall(b"hello\n")
    assert lines.line() == b"hello\n"
    tls.unwrap()  # our close_notify, and theirs back
    wait_for(lambda: "tlsapp: EOF after 6 bytes" in server.log_text())
    wait_no_children(server)


def test_tlsd_lowercase_y_sends_no_block(servers, bindir, pki, apps):
    server = start_tlsd(servers, bindir, pki, apps, ["-n"], action="lower")
    tls, lines = starttls(server, client_context(pki))
    assert info_of(lines)["block"] is None
    tls.sendall(b"x\n")
    assert lines.line() == b"x\n"
    tls.unwrap()
    wait_no_children(server)


def test_tlsd_client_certificate_variables(servers, bindir, pki, apps):
    server = start_tlsd(servers, bindir, pki, apps, ["-n"],
                        CCAFILE=pki["ca"])
    tls, lines = starttls(server, client_context(pki,
                                                 cert=pki["client_pem"]))
    block = info_of(lines)["block"]
    assert block["SSL_CLIENT_VERIFY"] == "SUCCESS"
    assert block["SSL_CLIENT_S_DN"] == (
        "emailAddress=client@example.test,CN=client.example.test")
    assert block["SSL_CLIENT_S_DN_CN"] == "client.example.test"
    assert block["SSL_CLIENT_S_DN_Email"] == "client@example.test"
    assert block["SSL_CLIENT_I_DN"] == "CN=QM Test CA"
    assert block["SSL_CLIENT_M_SERIAL"] == "12AB"
    tls.close()
    wait_no_children(server)


def test_tlsd_client_email_from_san(servers, bindir, pki, apps):
    server = start_tlsd(servers, bindir, pki, apps, ["-n"],
                        CCAFILE=pki["ca"])
    tls, lines = starttls(server, client_context(pki,
                                                 cert=pki["sanmail_pem"]))
    block = info_of(lines)["block"]
    assert block["SSL_CLIENT_VERIFY"] == "SUCCESS"
    assert block["SSL_CLIENT_S_DN_Email"] == "alt@example.test"
    tls.close()
    wait_no_children(server)


def test_tlsd_unverified_client_certificate(servers, bindir, pki, apps):
    """A certificate from an unknown CA does not stop the handshake;
    the application learns why it failed."""
    server = start_tlsd(servers, bindir, pki, apps, ["-n"],
                        CCAFILE=pki["ca"])
    tls, lines = starttls(server, client_context(pki,
                                                 cert=pki["stranger_pem"]))
    block = info_of(lines)["block"]
    assert block["SSL_CLIENT_VERIFY"] == (
        "FAILED:unable to get local issuer certificate")
    assert block["SSL_CLIENT_S_DN_CN"] == "stranger.example.test"
    assert block["SSL_CLIENT_S_DN_Email"] is None
    tls.close()
    # Without a certificate the client is not refused either.
    tls, lines = starttls(server, client_context(pki))
    assert info_of(lines)["block"]["SSL_CLIENT_VERIFY"] == "NONE"
    tls.close()
    wait_no_children(server)


def test_tlsd_revoked_client_certificate(servers, bindir, pki, apps):
    server = start_tlsd(servers, bindir, pki, apps, ["-n"],
                        CCAFILE=pki["ca"], CRLFILE=pki["ca_crl"])
    tls, lines = starttls(server, client_context(pki,
                                                 cert=pki["revoked_pem"]))
    block = info_of(lines)["block"]
    assert block["SSL_CLIENT_VERIFY"] == "FAILED:certificate revoked"
    assert block["SSL_CLIENT_S_DN_CN"] == "revoked.example.test"
    tls.close()
    tls, lines = starttls(server, client_context(pki,
                                                 cert=pki["client_pem"]))
    assert info_of(lines)["block"]["SSL_CLIENT_VERIFY"] == "SUCCESS"
    tls.close()
    wait_no_children(server)
    servers.stop(server)
    server = start_tlsd(servers, bindir, pki, apps, ["-n"],
                        CCAFILE=pki["ca"], CRLFILE=pki["ca_key"])
    raw = server.connect()
    assert raw.recv(10) == b""
    raw.close()
    wait_for(lambda: "CRLFILE " + str(pki["ca_key"]) + ": unable to load "
             "the CRLs" in server.log_text())
    wait_no_children(server)


def test_tlsd_immediate_mode(servers, bindir, pki, apps):
    server = start_tlsd(servers, bindir, pki, apps, [], mode="immediate")
    tls, lines = implicit_tls(server, client_context(pki))
    info = info_of(lines)
    env = info["env"]
    assert env["SSL_PROTOCOL"] == "TLSv1.3"
    assert env["SSL_CIPHER"] == tls.cipher()[0]
    assert env["SSL_CLIENT_VERIFY"] == "NONE"
    assert "SSLCTLFD" not in env and "SSLREADFD" not in env
    assert env["SSLREMOTEIP"] == "127.0.0.1"
    tls.sendall(b"implicit\n")
    assert lines.line() == b"implicit\n"
    tls.unwrap()
    wait_for(lambda: "tlsapp: EOF after 9 bytes" in server.log_text())
    wait_no_children(server)


@pytest.mark.parametrize("mode", ["delayed", "immediate"])
def test_tlsd_one_megabyte_both_ways(servers, bindir, pki, apps, mode):
    server = start_tlsd(servers, bindir, pki, apps,
                        ["-n"] if mode == "delayed" else [], mode=mode)
    ctx = client_context(pki)
    if mode == "delayed":
        tls, lines = starttls(server, ctx)
    else:
        tls, lines = implicit_tls(server, ctx)
    info_of(lines)
    payload = os.urandom(MB)
    assert exchange(tls, lines, payload) == payload
    tls.unwrap()
    wait_for(lambda: f"tlsapp: EOF after {MB} bytes" in server.log_text())
    wait_no_children(server)


def test_tlsd_application_close_sends_close_notify(servers, bindir, pki,
                                                   apps):
    server = start_tlsd(servers, bindir, pki, apps, ["-n"], action="quit")
    tls, lines = starttls(server, client_context(pki))
    info_of(lines)
    tls.sendall(b"QUIT\n")
    assert lines.line() == b"BYE\n"
    # close_notify reads as b""; a bare TCP close would raise SSLEOFError
    # (suppress_ragged_eofs is off).
    assert tls.recv(100) == b""
    tls.close()
    wait_no_children(server)
    pid = tcpserver_child_pids(server)[-1]
    wait_for(lambda: end_status(server, pid) == 0)


def test_tlsd_declined_tls_keeps_the_app_status(servers, bindir, pki, apps):
    server = start_tlsd(servers, bindir, pki, apps, ["-n"],
                        action="decline")
    raw = server.connect()
    raw.sendall(b"HELLO\r\n")
    assert cleartext_line(raw) == b"NO TLS\r\n"
    assert raw.recv(100) == b""
    raw.close()
    wait_no_children(server)
    pid = tcpserver_child_pids(server)[-1]
    wait_for(lambda: end_status(server, pid) == 3 * 256)


def test_tlsd_handshake_timeout_immediate(servers, bindir, pki, apps):
    server = start_tlsd(servers, bindir, pki, apps, ["-t", "1"],
                        mode="immediate")
    raw = server.connect(timeout=20)
    start = time.monotonic()
    assert raw.recv(100) == b""
    elapsed = time.monotonic() - start
    raw.close()
    assert 0.8 <= elapsed < 10
    wait_for(lambda: "handshake timed out" in server.log_text())
    assert "tlsapp:" not in server.log_text()  # the app never ran
    wait_no_children(server)


def test_tlsd_handshake_timeout_delayed(servers, bindir, pki, apps):
    server = start_tlsd(servers, bindir, pki, apps, ["-n", "-t", "1"])
    raw = server.connect(timeout=20)
    raw.sendall(b"STARTTLS\r\n")
    assert cleartext_line(raw) == b"220 go ahead\r\n"
    start = time.monotonic()
    assert raw.recv(100) == b""
    assert 0.8 <= time.monotonic() - start < 10
    raw.close()
    wait_for(lambda: "tlsapp: no block" in server.log_text())
    wait_no_children(server)


@pytest.mark.parametrize("mode", ["delayed", "immediate"])
def test_tlsd_garbage_instead_of_client_hello(servers, bindir, pki, apps,
                                              mode):
    server = start_tlsd(servers, bindir, pki, apps,
                        ["-n"] if mode == "delayed" else [], mode=mode)
    raw = server.connect()
    if mode == "delayed":
        raw.sendall(b"STARTTLS\r\n")
        assert cleartext_line(raw) == b"220 go ahead\r\n"
    raw.sendall(b"GET / HTTP/1.0\r\n\r\n" + b"\x00" * 100)
    try:
        # Closing with unread garbage in the buffer makes a reset.
        assert raw.recv(100) == b""
    except ConnectionResetError:
        pass
    raw.close()
    wait_for(lambda: "TLS handshake failed" in server.log_text())
    wait_no_children(server)
    # The application's status: it saw the failure (the test application
    # exits 4 without a block), or never ran (111).
    pid = tcpserver_child_pids(server)[-1]
    expected = 4 if mode == "delayed" else 111
    wait_for(lambda: end_status(server, pid) == expected * 256)
    # Nothing of this connection anywhere, in or out of the session
    # (tcpserver's own command line names the application).
    for other in qmtest.all_pids():
        if other != server.proc.pid and qmtest.pid_alive(other):
            assert apps["server"] not in qmtest.proc_cmdline(other)


def test_tlsd_peer_closes_without_close_notify(servers, bindir, pki, apps):
    """A client that just closes: the application sees EOF, nothing is
    logged as an error."""
    server = start_tlsd(servers, bindir, pki, apps, ["-n"])
    tls, lines = starttls(server, client_context(pki))
    info_of(lines)
    tls.sendall(b"abc")
    assert lines.exactly(3) == b"abc"
    tls.close()
    wait_for(lambda: "tlsapp: EOF after 3 bytes" in server.log_text())
    wait_no_children(server)
    assert "warning" not in server.log_text()


def test_tlsd_idle_timeout(servers, bindir, pki, apps):
    server = start_tlsd(servers, bindir, pki, apps, ["-n", "-i", "1"])
    tls, lines = starttls(server, client_context(pki))
    info_of(lines)
    start = time.monotonic()
    with pytest.raises((ssl.SSLError, EOFError, OSError)):
        # The server goes away; no close_notify from an idle timeout is
        # promised, so either ending is fine, but it must end.
        data = tls.recv(100)
        if data == b"":
            raise EOFError
    assert time.monotonic() - start < 10
    tls.close()
    wait_for(lambda: "idle timeout" in server.log_text())
    wait_no_children(server)


@root_only()
@pytest.mark.parametrize("mode", ["delayed", "immediate"])
def test_tlsd_ids_of_the_two_processes(servers, bindir, pki, apps, instance,
                                       qm_session_dir, mode):
    """The TLS process runs as SSL_UID/SSL_GID, the application as
    -u/-g, and the certificate is readable by root only."""
    private = qm_session_dir / f"private-{mode}"
    private.mkdir(mode=0o700)
    cert = private / "servercert.pem"
    shutil.copy(pki["server_pem"], cert)
    cert.chmod(0o600)
    jail = qm_session_dir / f"jail-{mode}"
    jail.mkdir(mode=0o755)
    nobody = pwd.getpwnam("nobody")
    opts = ["-u", str(nobody.pw_uid), "-g", str(nobody.pw_gid)]
    if mode == "delayed":
        opts.insert(0, "-n")
    server = start_tlsd(servers, bindir, pki, apps, opts, mode=mode,
                        CERTFILE=cert, SSL_UID=instance.uid,
                        SSL_GID=instance.gid, SSL_CHROOT=jail)
    ctx = client_context(pki)
    if mode == "delayed":
        tls, lines = starttls(server, ctx)
    else:
        tls, lines = implicit_tls(server, ctx)
    info = info_of(lines)
    assert (info["uid"], info["euid"]) == (nobody.pw_uid, nobody.pw_uid)
    assert (info["gid"], info["egid"]) == (nobody.pw_gid, nobody.pw_gid)
    assert info["groups"] == [nobody.pw_gid]
    tls_ids = proc_ids(info["ppid"])
    assert "ucspi-tlsd" in qmtest.proc_cmdline(info["ppid"])
    assert tls_ids["Uid"] == [instance.uid] * 4
    assert tls_ids["Gid"] == [instance.gid] * 4
    assert tls_ids["Groups"] == [instance.gid]
    assert os.readlink(f"/proc/{info['ppid']}/root") == str(jail)
    assert os.readlink(f"/proc/{info['pid']}/root") == "/"
    tls.sendall(b"ok\n")
    assert lines.line() == b"ok\n"
    tls.unwrap()
    wait_no_children(server)


def test_tlsd_dh_parameters(servers, bindir, pki, apps, qm_session_dir):
    ciphers = "DHE-RSA-AES256-GCM-SHA384"
    bad = qm_session_dir / "bad-dh.pem"
    bad.write_text("not DH parameters\n")
    for dhfile, warned in ((pki["dh_pem"], False),
                           (pki["dh1024_pem"], True),  # too weak today
                           (qm_session_dir / "missing-dh.pem", False),
                           (bad, True)):
        server = start_tlsd(servers, bindir, pki, apps, ["-n"],
                            DHFILE=dhfile, CIPHERS=ciphers)
        ctx = client_context(pki, ssl.TLSVersion.TLSv1_2)
        ctx.set_ciphers(ciphers)
        tls, lines = starttls(server, ctx)
        assert info_of(lines)["block"]["SSL_CIPHER"] == ciphers
        tls.close()
        wait_no_children(server)
        assert ("using automatic DH parameters" in server.log_text()) \
            == warned
        servers.stop(server)


def test_tlsd_configuration_errors(servers, bindir, pki, apps,
                                   qm_session_dir):
    cases = [({"CERTFILE": None}, "ucspi-tlsd: fatal: CERTFILE is not set"),
             ({"CERTFILE": qm_session_dir / "nope.pem"},
              f"CERTFILE {qm_session_dir}/nope.pem: "),
             ({"KEYFILE": pki["wild_key"]}, "does not match"),
             ({"CIPHERS": "NOSUCHCIPHER"}, "CIPHERS NOSUCHCIPHER: "),
             ({"SSL_UID": "qmaild"}, "SSL_UID and SSL_GID must be numbers")]
    for env, message in cases:
        server = start_tlsd(servers, bindir, pki, apps, ["-n"], **env)
        raw = server.connect()
        assert raw.recv(100) == b""
        raw.close()
        wait_for(lambda: message in server.log_text(), message=message)
        assert "tlsapp:" not in server.log_text()
        wait_no_children(server)
        servers.stop(server)


def test_tlsd_usage(bindir):
    for argv in ([], ["-n"], ["-t", "x", "true"], ["-u", "nobody", "true"],
                 ["-Z", "true"]):
        result = subprocess.run([str(bindir / "ucspi-tlsd")] + argv,
                                capture_output=True, timeout=10)
        assert result.returncode == 100, argv
        assert b"ucspi-tlsd: fatal:" in result.stderr


def test_only_tls_programs_link_openssl(bindir):
    checked = set()
    for entry in sorted(bindir.iterdir()):
        with open(entry, "rb") as f:
            if f.read(4) != b"\x7fELF":
                continue
        out = subprocess.run(["ldd", str(entry)], capture_output=True,
                             timeout=30).stdout.decode()
        links = "libssl" in out or "libcrypto" in out
        if entry.name in ("ucspi-tlsd", "ucspi-tlsc"):
            assert "libssl" in out, entry.name
        elif entry.name not in TLS_PROGRAMS:
            assert not links, f"{entry.name} links OpenSSL"
        checked.add(entry.name)
    assert {"ucspi-tlsd", "ucspi-tlsc", "qmail-smtpd",
            "qmail-rsmtp"} <= checked
    if (bindir / "qmail-remote").exists():
        assert "qmail-remote" in checked


# ---- ucspi-tlsc against a Python TLS server ----


class Peer:
    """A one-connection TLS server in a thread: optionally a cleartext
    STARTTLS exchange first, then TLS; it answers one line."""

    def __init__(self, cert, starttls=True, client_ca=None):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(30)
        self.port = self.listener.getsockname()[1]
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(str(cert))
        if client_ca:
            self.ctx.load_verify_locations(str(client_ca))
            self.ctx.verify_mode = ssl.CERT_OPTIONAL
        self.sni = []
        self.ctx.sni_callback = self._sni
        self.starttls = starttls
        self.peercert = None
        self.error = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _sni(self, sslobj, name, ctx):
        self.sni.append(name)

    def _serve(self):
        try:
            conn, _ = self.listener.accept()
            conn.settimeout(30)
            if self.starttls:
                conn.sendall(b"220 hello\r\n")
                cleartext_line(conn)
                conn.sendall(b"220 go ahead\r\n")
            tls = self.ctx.wrap_socket(conn, server_side=True)
            self.peercert = tls.getpeercert()
            line = Lines(tls).line()
            tls.sendall(b"echo: " + line)
            try:
                tls.unwrap()
            except (ssl.SSLError, OSError):
                pass
            tls.close()
        except Exception as e:  # reported by finish()
            self.error = e

    def finish(self):
        self.thread.join(30)
        self.listener.close()
        return self.error


def tlsc_env(bindir, **extra):
    env = qmtest.program_env(bindir)
    for name in ("CERTFILE", "KEYFILE", "CAFILE", "CADIR", "CIPHERS",
                 "TLS_SERVERNAME", "SSLCTLFD", "SSLREADFD", "SSLWRITEFD"):
        env.pop(name, None)
    for name, value in extra.items():
        if value is not None:
            env[name] = str(value)
    return env


def run_tlsc(bindir, apps, port, opts=("-y",), mode="delayed", **env):
    argv = (["tcpclient", "-RHl0", "127.0.0.1", str(port),
             str(bindir / "ucspi-tlsc")] + list(opts)
            + [PY, apps["client"], mode])
    result = subprocess.run(argv, env=tlsc_env(bindir, **env),
                            stdin=subprocess.DEVNULL, capture_output=True,
                            timeout=60, start_new_session=True)
    out = result.stdout.decode().strip()
    return result, (json.loads(out) if out else None)


def tlsc_case(bindir, apps, pki, cert, name, cafile=None, **env):
    peer = Peer(pki[cert])
    result, out = run_tlsc(bindir, apps, peer.port, TLS_SERVERNAME=name,
                           CAFILE=cafile, **env)
    error = peer.finish()
    assert result.returncode == 0, result.stderr
    assert error is None, error
    return peer, out


def test_tlsc_delayed_verified(bindir, apps, pki):
    peer, out = tlsc_case(bindir, apps, pki, "server_pem", "localhost",
                          pki["ca"])
    block = out["block"]
    assert peer.sni == ["localhost"]
    assert block["SSL_SERVER_VERIFY"] == "SUCCESS"
    assert block["SSL_PROTOCOL"] == "TLSv1.3"
    assert block["SSL_CIPHER"]
    assert block["SSL_SERVER_S_DN"] == "CN=localhost"
    assert block["SSL_SERVER_I_DN"] == "CN=QM Test CA"
    assert block["SSL_SERVER_M_SERIAL"] == "1001"
    assert out["answer"] == "echo: hello over tls\n"
    assert peer.peercert is None  # no client certificate was asked for


@pytest.mark.parametrize("cert,name,verdict", [
    ("server_pem", "localhost", "SUCCESS"),
    ("server_pem", "LOCALHOST.", "SUCCESS"),
    ("server_pem", "127.0.0.1", "SUCCESS"),
    ("wrong_pem", "localhost",
     "FAILED:certificate name does not match localhost"),
    ("wild_pem", "a.example.test", "SUCCESS"),
    ("wild_pem", "a.b.example.test",
     "FAILED:certificate name does not match a.b.example.test"),
    ("wild_pem", "example.test",
     "FAILED:certificate name does not match example.test"),
    ("cnonly_pem", "cn.example.test", "SUCCESS"),
    ("sanother_pem", "localhost",
     "FAILED:certificate name does not match localhost"),
    ("server_pem", "bad name",
     "FAILED:certificate name does not match (the name to check is not "
     "a host name)"),
])
def test_tlsc_name_rules(bindir, apps, pki, cert, name, verdict):
    peer, out = tlsc_case(bindir, apps, pki, cert, name, pki["ca"])
    assert out["block"]["SSL_SERVER_VERIFY"] == verdict
    # SNI carries a host name only, never an address.
    if name == "127.0.0.1" or name == "bad name":
        assert peer.sni == [None]
    else:
        assert peer.sni == [name.rstrip(".")]
    assert out["answer"] == "echo: hello over tls\n"


def test_tlsc_wrong_ca_and_no_ca(bindir, apps, pki):
    peer, out = tlsc_case(bindir, apps, pki, "server_pem", "localhost",
                          pki["otherca"])
    assert out["block"]["SSL_SERVER_VERIFY"] == (
        "FAILED:unable to get local issuer certificate")
    peer, out = tlsc_case(bindir, apps, pki, "server_pem", "localhost")
    assert out["block"]["SSL_SERVER_VERIFY"] == "NONE"
    assert out["block"]["SSL_SERVER_S_DN"] == "CN=localhost"


def test_tlsc_presents_client_certificate(bindir, apps, pki):
    peer = Peer(pki["server_pem"], client_ca=pki["ca"])
    result, out = run_tlsc(bindir, apps, peer.port, TLS_SERVERNAME="localhost",
                           CAFILE=pki["ca"], CERTFILE=pki["client_crt"],
                           KEYFILE=pki["client_key"])
    assert peer.finish() is None
    assert result.returncode == 0, result.stderr
    subject = dict(x[0] for x in peer.peercert["subject"])
    assert subject["commonName"] == "client.example.test"
    assert subject["emailAddress"] == "client@example.test"


def test_tlsc_immediate_mode(bindir, apps, pki):
    peer = Peer(pki["server_pem"], starttls=False)
    result, out = run_tlsc(bindir, apps, peer.port, opts=(),
                           mode="immediate", TLS_SERVERNAME="localhost",
                           CAFILE=pki["ca"])
    assert peer.finish() is None
    assert result.returncode == 0, result.stderr
    env = out["env"]
    assert env["SSL_SERVER_VERIFY"] == "SUCCESS"
    assert env["SSL_PROTOCOL"] == "TLSv1.3"
    assert "SSLCTLFD" not in env
    assert env["SSLREMOTEPORT"] == str(peer.port)
    assert out["answer"] == "echo: hello over tls\n"


def test_tlsc_required_verification_fails_closed(bindir, apps, pki):
    peer = Peer(pki["server_pem"])
    result, out = run_tlsc(bindir, apps, peer.port, opts=("-y", "-V"),
                           TLS_SERVERNAME="localhost",
                           CAFILE=pki["otherca"])
    peer.finish()
    assert out == {"failed": True}  # the control fd closed with no block
    assert result.returncode == 4  # the application's status
    assert b"server certificate not accepted: unable to get local issuer" \
        in result.stderr


def test_tlsc_declined_and_garbage(bindir, apps, pki, qm_session_dir):
    """The application may never ask for TLS; a server that answers TLS
    with garbage fails the handshake and ends everything."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def garbage():
        conn, _ = listener.accept()
        conn.sendall(b"220 hello\r\n")
        cleartext_line(conn)
        conn.sendall(b"220 go ahead\r\n")
        conn.recv(4096)
        conn.sendall(b"this is not TLS\r\n" * 10)
        conn.close()

    t = threading.Thread(target=garbage, daemon=True)
    t.start()
    result, out = run_tlsc(bindir, apps, port, TLS_SERVERNAME="localhost")
    t.join(10)
    listener.close()
    assert out == {"failed": True}
    assert result.returncode == 4  # what qmail-remote needs to see
    assert b"TLS handshake failed" in result.stderr


# ---- sslserver and sslclient ----


def start_front(servers, argv_for_port, env, name, host="127.0.0.1"):
    """Starts a front end that becomes tcpserver (same pid)."""
    log_path = servers.logbook.new("server-" + name)
    for _ in range(servers.BIND_ATTEMPTS):
        port = qmtest.free_port(host)
        full = argv_for_port(port)
        server = servers._spawn(full, env, servers.cwd, host, port, log_path)
        if servers._wait_ready(server):
            servers.running.append(server)
            return server
        if not qmtest.port_taken(server, server.log_text()):
            raise qmtest.ServerError(f"{full!r} died:\n{server.log_text()}")
    raise qmtest.ServerError("no free port")


def make_rules(qm_session_dir, text):
    d = qm_session_dir / "rules"
    d.mkdir(exist_ok=True, mode=0o755)
    src = d / "rules.txt"
    src.write_text(text)
    cdb = d / "rules.cdb"
    result = subprocess.run(["tcprules", str(cdb), str(d / "rules.tmp")],
                            input=text.encode(), capture_output=True,
                            timeout=30)
    assert result.returncode == 0, result.stderr
    return cdb


@root_only()
def test_sslserver_option_mapping(servers, bindir, pki, apps, instance,
                                  qm_session_dir):
    cdb = make_rules(qm_session_dir,
                     '127.0.0.1:allow,RULEVAR="from-rules"\n:deny\n')
    nobody = pwd.getpwnam("nobody")
    env = tlsd_env(bindir, pki, SSL_UID=instance.uid, SSL_GID=instance.gid)
    server = start_front(
        servers,
        lambda port: [str(bindir / "sslserver"), "-neV", "-vRl", "tls.test",
                      "-c", "2", "-x", str(cdb), "-u", str(nobody.pw_uid),
                      "-g", str(nobody.pw_gid), "127.0.0.1", str(port), PY,
                      apps["server"], "delayed", "echo"],
        env, "sslserver")
    # tcpserver itself: root, and no -u/-g of its own.
    cmd = qmtest.proc_cmdline(server.proc.pid).split()
    assert cmd[0] == "tcpserver"
    assert "-u" not in cmd[:cmd.index("127.0.0.1")]
    assert "-g" not in cmd[:cmd.index("127.0.0.1")]
    assert proc_ids(server.proc.pid)["Uid"][0] == 0
    tls, lines = starttls(server, client_context(pki))
    info = info_of(lines)
    env = info["env"]
    assert env["RULEVAR"] == "from-rules"  # -x
    assert env["TCPLOCALHOST"] == env["SSLLOCALHOST"] == "tls.test"  # -l
    assert "TCPREMOTEINFO" not in env and "SSLREMOTEINFO" not in env  # -R
    assert env["SSLREMOTEIP"] == "127.0.0.1"  # -e and SSL* twins
    assert info["block"]["SSL_PROTOCOL"] == "TLSv1.3"  # -n
    assert info["uid"] == nobody.pw_uid and info["gid"] == nobody.pw_gid
    assert proc_ids(info["ppid"])["Uid"] == [instance.uid] * 4
    assert "tcpserver: status: 1/2" in server.log_text()  # -v and -c
    wait_for(lambda: "ucspi-tlsd: info: 127.0.0.1: TLSv1.3 "
             "TLS_AES_256_GCM_SHA384" in server.log_text())  # -V
    tls.unwrap()
    wait_no_children(server)


def test_sslserver_immediate_and_sslclient(servers, bindir, pki, apps):
    """sslserver without -n handshakes first; sslclient verifies the
    server against -a and the host it was given, else gives up."""
    server = start_front(
        servers,
        lambda port: [str(bindir / "sslserver"), "-RHl0", "127.0.0.1",
                      str(port), PY, apps["server"], "immediate", "echo"],
        tlsd_env(bindir, pki), "sslserver")
    base = tlsc_env(bindir)

    def client(*opts):
        argv = ([str(bindir / "sslclient")] + list(opts)
                + ["-RHl0", "127.0.0.1", str(server.port), PY,
                   apps["client"], "immediate"])
        return subprocess.run(argv, env=base, capture_output=True,
                              stdin=subprocess.DEVNULL, timeout=60)

    ok = client("-a", str(pki["ca"]))
    assert ok.returncode == 0, ok.stderr
    out = json.loads(ok.stdout)
    assert out["env"]["SSL_SERVER_VERIFY"] == "SUCCESS"
    assert out["env"]["TLS_SERVERNAME"] == "127.0.0.1"
    assert json.loads(out["answer"])["env"]["SSL_PROTOCOL"] == "TLSv1.3"

    refused = client("-a", str(pki["otherca"]))
    assert refused.returncode == 111
    assert refused.stdout == b""  # the application never ran
    assert b"server certificate not accepted" in refused.stderr

    unchecked = client("-X", "-a", str(pki["otherca"]))
    assert unchecked.returncode == 0, unchecked.stderr
    assert json.loads(unchecked.stdout)["env"]["SSL_SERVER_VERIFY"] \
        .startswith("FAILED:")
    wait_no_children(server)


def test_sslclient_delayed(bindir, apps, pki):
    peer = Peer(pki["server_pem"])
    argv = [str(bindir / "sslclient"), "-y", "-a", str(pki["ca"]), "-RHl0",
            "127.0.0.1", str(peer.port), PY, apps["client"], "delayed"]
    result = subprocess.run(argv, env=tlsc_env(bindir), capture_output=True,
                            stdin=subprocess.DEVNULL, timeout=60)
    assert peer.finish() is None
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["block"]["SSL_SERVER_VERIFY"] == "SUCCESS"
    assert out["answer"] == "echo: hello over tls\n"


@pytest.mark.parametrize("prog,opts,message", [
    ("sslserver", ["-B", "hi"], "-B is not supported"),
    ("sslserver", ["-m"], "-m is not supported: set CCAFILE"),
    ("sslserver", ["-z"], "-z is not supported"),
    ("sslserver", ["-3"], "-3 is not supported"),
    ("sslserver", ["-K"], "unknown option -K"),
    ("sslserver", ["-c", "many"], "-c wants a number"),
    ("sslserver", ["-u", "nobody"], "-u wants a number"),
    ("sslserver", ["-U"], "-U needs $UID and $GID"),
    ("sslclient", ["-3"], "-3 is not supported"),
    ("sslclient", ["-C", "x"], "-C is not supported"),
    ("sslclient", ["-T", "x+1"], "-T wants x+y seconds"),
])
def test_front_end_refusals(bindir, prog, opts, message):
    env = qmtest.program_env(bindir)
    env.pop("UID", None)
    env.pop("GID", None)
    result = subprocess.run([str(bindir / prog)] + opts
                            + ["127.0.0.1", "1", "true"], env=env,
                            capture_output=True, timeout=10)
    assert result.returncode == 100
    assert message in result.stderr.decode()
    short = subprocess.run([str(bindir / prog), "127.0.0.1", "1"], env=env,
                           capture_output=True, timeout=10)
    assert short.returncode == 100
    assert b"usage:" in short.stderr


@root_only()
def test_seed_run_script_line(servers, bindir, pki, instance,
                              qm_session_dir):
    """The port-25 line of the seed's run script, as written (with our
    accounts, a free port and the test certificate)."""
    cert = qm_session_dir / "seed-servercert.pem"
    shutil.copy(pki["server_pem"], cert)
    cert.chmod(0o600)
    account = instance.account
    env = instance.env()
    env["RBLSMTPD"] = ""  # no DNS in tests: rblsmtpd lets everyone in
    script = ("exec env UCSPITLS='' SSL_UID=$(id -u nobody) "
              "SSL_GID=$(id -g nobody) "
              f"CERTFILE={cert} "
              f"sslserver -ne -vRl0 -u $(id -u {account}) "
              f"-g $(id -g {account}) 0 {{port}} "
              "rblsmtpd -r zen.spamhaus.org qmail-smtpd")
    server = start_front(
        servers, lambda port: ["sh", "-c", script.format(port=port)], env,
        "seed", host="127.0.0.1")
    with smtplib.SMTP("127.0.0.1", server.port, timeout=20) as smtp:
        code, _ = smtp.ehlo("client.example.test")
        assert code == 250
        assert smtp.has_extn("starttls")
        smtp.starttls(context=client_context(pki))
        code, _ = smtp.ehlo("client.example.test")
        assert code == 250
        assert not smtp.has_extn("starttls")
        assert smtp.sock.version() == "TLSv1.3"
        assert smtp.noop()[0] == 250
    wait_no_children(server)


# ---- update_tmprsadh and mkcert ----


def control_home(qm_session_dir, name):
    home = qm_session_dir / name
    (home / "control").mkdir(parents=True)
    return home


def run_update(bindir, home, *opts, timeout=120):
    env = qmtest.program_env(bindir)
    env["QMAILHOME"] = str(home)
    return subprocess.run([str(bindir / "update_tmprsadh")] + list(opts),
                          env=env, capture_output=True, timeout=timeout)


def test_update_tmprsadh_makes_private_files(bindir, qm_session_dir):
    home = control_home(qm_session_dir, "rsadh")
    result = run_update(bindir, home, "-b", "1024", "-d")
    assert result.returncode == 0, result.stderr
    control = home / "control"
    assert sorted(p.name for p in control.iterdir()) == [
        "dh2048.pem", "rsa2048.pem"]  # no .new file, no lock left
    # -d makes X9.42 parameters ("BEGIN X9.42 DH PARAMETERS").
    for name, marker in (("dh2048.pem", b"DH PARAMETERS-----\n"),
                         ("rsa2048.pem", b"PRIVATE KEY-----\n")):
        st = (control / name).stat()
        assert stat.S_IMODE(st.st_mode) == 0o600
        assert (st.st_uid, st.st_gid) == (control.stat().st_uid,
                                          control.stat().st_gid)
        assert marker in (control / name).read_bytes()
    check = subprocess.run(["openssl", "dhparam", "-in",
                            str(control / "dh2048.pem"), "-noout", "-text"],
                           capture_output=True, timeout=30)
    assert b"1024 bit" in check.stdout


def test_update_tmprsadh_in_an_instance(bindir, instance):
    result = run_update(bindir, instance.path, "-b", "1024", "-d")
    assert result.returncode == 0, result.stderr
    for name in ("dh2048.pem", "rsa2048.pem"):
        st = (instance.path / "control" / name).stat()
        assert stat.S_IMODE(st.st_mode) == 0o600
        if qmtest.is_root():
            assert (st.st_uid, st.st_gid) == (instance.uid, instance.gid)


def test_update_tmprsadh_replaces_atomically(bindir, qm_session_dir):
    home = control_home(qm_session_dir, "atomic")
    target = home / "control" / "dh2048.pem"
    assert run_update(bindir, home, "-b", "1024", "-d").returncode == 0
    seen = []
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            try:
                data = target.read_bytes()
            except FileNotFoundError:
                seen.append(b"missing")
                continue
            seen.append(data)

    t = threading.Thread(target=reader)
    t.start()
    try:
        for _ in range(3):
            result = run_update(bindir, home, "-b", "1024", "-d")
            assert result.returncode == 0, result.stderr
    finally:
        stop.set()
        t.join(10)
    assert len(seen) > 10
    for data in seen:
        assert data.startswith(b"-----BEGIN X9.42 DH PARAMETERS-----\n"), \
            data
        assert data.endswith(b"-----END X9.42 DH PARAMETERS-----\n"), data
    assert len(set(seen)) >= 2  # it did change under the reader


def test_update_tmprsadh_lock(bindir, qm_session_dir):
    home = control_home(qm_session_dir, "locked")
    lock = home / "control" / ".update_tmprsadh.lock"
    lock.mkdir()
    (lock / "pid").write_text(f"{os.getpid()}\n")  # a live holder
    result = run_update(bindir, home, "-b", "1024", "-d")
    assert result.returncode == 111
    assert b"another update_tmprsadh is running" in result.stderr
    assert not (home / "control" / "dh2048.pem").exists()
    assert lock.is_dir()  # the holder's lock stays
    # A holder that died leaves a stale lock, which is taken over.
    dead = subprocess.Popen(["true"])
    dead.wait()
    (lock / "pid").write_text(f"{dead.pid}\n")
    result = run_update(bindir, home, "-b", "1024", "-d")
    assert result.returncode == 0, result.stderr
    assert (home / "control" / "dh2048.pem").exists()
    assert not lock.exists()


def test_update_tmprsadh_usage(bindir, qm_session_dir):
    home = control_home(qm_session_dir, "usage")
    assert run_update(bindir, home, "-b", "lots").returncode == 100
    assert run_update(bindir, home, "extra").returncode == 100
    result = run_update(bindir, qm_session_dir / "nowhere")
    assert result.returncode == 111
    assert b"unable to switch to" in result.stderr


def test_mkcert(bindir, pki, apps, servers, qm_session_dir):
    d = qm_session_dir / "mkcert"
    d.mkdir()
    target = d / "servercert.pem"
    env = qmtest.program_env(bindir)

    def mkcert(*args):
        return subprocess.run([str(bindir / "mkcert")] + list(args), env=env,
                              capture_output=True, timeout=60)

    result = mkcert("-f", str(target), "mail.example.test")
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    data = target.read_bytes()
    assert b"BEGIN CERTIFICATE" in data and b"PRIVATE KEY" in data
    ext = subprocess.run(["openssl", "x509", "-in", str(target), "-noout",
                          "-subject", "-ext", "subjectAltName"],
                         capture_output=True, timeout=30).stdout.decode()
    assert "CN = mail.example.test" in ext
    assert "DNS:mail.example.test" in ext
    assert sorted(p.name for p in d.iterdir()) == ["servercert.pem"]
    # Never over an existing certificate unless told to.
    again = mkcert("-f", str(target), "other.example.test")
    assert again.returncode == 111 and b"use -F" in again.stderr
    assert target.read_bytes() == data
    assert mkcert("-F", "-f", str(target), "127.0.0.1").returncode == 0
    ext = subprocess.run(["openssl", "x509", "-in", str(target), "-noout",
                          "-ext", "subjectAltName"],
                         capture_output=True, timeout=30).stdout.decode()
    assert "IP Address:127.0.0.1" in ext
    assert mkcert("-f", str(d / "x.pem"), "bad;name").returncode == 111
    assert mkcert("-f", str(d / "x.pem"), "-x").returncode == 100
    # ucspi-tlsd takes it as it is.
    server = start_tlsd(servers, bindir, pki, apps, ["-n"], CERTFILE=target)
    ctx = ssl.create_default_context(cafile=str(target))
    tls, lines = starttls(server, ctx, hostname="127.0.0.1")
    assert info_of(lines)["block"]["SSL_PROTOCOL"] == "TLSv1.3"
    tls.close()
    wait_no_children(server)
