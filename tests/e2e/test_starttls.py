"""TLS in the mail programs, end to end: qmail-smtpd under our sslserver
(STARTTLS, the UCSPITLS policy, SMTPS, the command-injection rules,
process ids, tlsclients, a supervised run script) and qmail-remote with
qmail-rsmtp and ucspi-tlsc against our own qmail-smtpd, fake peers and
Postfix (opportunistic and verified TLS, the tlshosts and notlshosts
files, client certificates, the cleartext retry after a broken
handshake, implicit TLS on port 465).

Clients on the inbound side are Python's smtplib and ssl, `openssl
s_client -starttls smtp` and swaks. Certificates come from a test CA
made once per session; names such as mx.remote.test are answered by the
test DNS server of test_remote.py through DNSCACHEIP, never by
/etc/hosts. Most tests need root (ids, port 465, Postfix). No test may
leave a process behind.
"""

import os
import re
import shutil
import smtplib
import ssl
import subprocess

import pytest

import foreign
import qmtest
import tlskit
from qmtest import is_root, wait_for
from queuectl import Queue
from test_remote import DnsServer, report, run_remote
from test_tls import wait_no_children

ROOT = pytest.mark.skipif(not is_root(), reason="needs root")
SENDER = "alice@example.test"
DEMO = "demo@example.test"
BOB = "bob@remote.test"
BODY = ("From: <alice@example.test>\nTo: <demo@example.test>\n"
        "Subject: over TLS\n\nsent over TLS\n")
TLS13_CIPHER = "TLS_AES_256_GCM_SHA384"
TLS12_CIPHER = "ECDHE-ECDSA-AES256-GCM-SHA384"
REQUIRE_530 = "530 Must issue a STARTTLS command first (#5.7.0)"


@pytest.fixture(scope="session")
def pki(qm_session_dir):
    return tlskit.make_mail_pki(qm_session_dir / "mailpki")


@pytest.fixture(scope="module")
def shared_instances(bindir, qm_session_dir):
    """Two instances for the whole module (making one costs up to a
    second): example.test, which receives inbound and sends outbound
    mail, and remote.test, the peer. Each test gets them back as new."""
    book = qmtest.LogBook(qm_session_dir / "logs" / "test_starttls-shared")
    made = {}
    try:
        for name, host, boxes in (("local", "example.test",
                                   ("demo", "alice", "bob")),
                                  ("peer", "remote.test", ("bob",))):
            made[name] = tlskit.make_shared_instance(bindir, book, host,
                                                     boxes)
        yield {name: tlskit.Snapshot(inst) for name, inst in made.items()}
    finally:
        for inst in made.values():
            inst.remove()


@pytest.fixture
def instance(shared_instances, qm_logbook, servers):
    """The local instance, as new. (servers: started servers stop
    before the next test resets the instance.)"""
    return shared_instances["local"].restore(qm_logbook)


@pytest.fixture
def peer_instance(shared_instances, qm_logbook, servers):
    return shared_instances["peer"].restore(qm_logbook)


@pytest.fixture
def queues():
    made = []

    def start(inst):
        queue = Queue(inst)
        made.append(queue)
        queue.start()
        queue.wait_started(timeout=20)
        return queue

    yield start
    for queue in made:
        queue.close()


def cert_for(inst, pki, name="smtpd_pem"):
    """The certificate as the TLS program may read it: as root a copy
    that only root can read, else the account's own copy."""
    if is_root():
        return tlskit.private_copy(pki[name], inst.path / "private")
    return tlskit.readable_copy(inst, pki[name], "servercert.pem")


def delivered(inst, box="demo", timeout=20):
    (_, data), = wait_for(lambda: inst.maildir_messages(box),
                          timeout=timeout, message=f"delivery to {box}")
    return data


def received_with(data):
    proto = tlskit.received_protocol(data)
    assert proto is not None, data[:400]
    return proto


# ---- inbound: STARTTLS ----


@pytest.mark.parametrize("version,cipher", [
    (ssl.TLSVersion.TLSv1_3, TLS13_CIPHER),
    (ssl.TLSVersion.TLSv1_2, TLS12_CIPHER)], ids=["tls13", "tls12"])
def test_starttls_delivery(servers, instance, pki, queues, version, cipher):
    queues(instance)
    server = tlskit.start_smtpd(servers, instance, cert_for(instance, pki),
                                UCSPITLS="")
    ctx = tlskit.client_context(pki, minimum=version, maximum=version)
    with smtplib.SMTP("127.0.0.1", server.port, timeout=20,
                      local_hostname="client.test") as smtp:
        smtp.ehlo()
        assert smtp.has_extn("starttls")
        assert smtp.starttls(context=ctx)[0] == 220
        assert smtp.sock.version() == version.name.replace("v1_", "v1.")
        assert smtp.sock.cipher()[0] == cipher
        smtp.ehlo()
        assert not smtp.has_extn("starttls")
        assert smtp.sendmail(SENDER, [DEMO], BODY) == {}
    data = delivered(instance)
    assert received_with(data) == f"ESMTPS ({cipher} encrypted)"
    assert b"Received: from unknown (HELO client.test) (127.0.0.1)\n" \
        b"  by example.test with ESMTPS (" in data
    assert data.endswith(BODY.encode())
    wait_no_children(server)


@pytest.mark.parametrize("flag,version,cipher", [
    ("-tls1_3", "TLSv1.3", TLS13_CIPHER),
    ("-tls1_2", "TLSv1.2", TLS12_CIPHER)], ids=["tls13", "tls12"])
def test_openssl_s_client_starttls(servers, instance, pki, flag, version,
                                   cipher):
    server = tlskit.start_smtpd(servers, instance, cert_for(instance, pki),
                                UCSPITLS="")
    dialogue = ("EHLO s-client.test\r\nMAIL FROM:<alice@example.test>\r\n"
                "RCPT TO:<demo@example.test>\r\nQUIT\r\n")
    # -nocommands: "RCPT" and "QUIT" must not be taken as s_client's own
    # R(enegotiate) and Q(uit).
    result = subprocess.run(
        ["openssl", "s_client", "-starttls", "smtp", flag, "-ign_eof",
         "-nocommands", "-verify_return_error", "-CAfile", str(pki["ca"]),
         "-verify_hostname", "localhost", "-connect",
         f"127.0.0.1:{server.port}"],
        input=dialogue.encode(), capture_output=True, timeout=30)
    out = result.stdout.decode(errors="replace")
    assert result.returncode == 0, (out, result.stderr)
    assert f"New, {version}, Cipher is {cipher}" in out, out
    assert "Verify return code: 0 (ok)" in out, out
    replies = out[out.index("250-example.test"):]
    assert "250-STARTTLS" not in replies  # the second EHLO, over TLS
    assert "250 ok\r\n250 ok\r\n221 example.test\r\n" in replies, out
    wait_no_children(server)


def test_swaks_tls_delivery(servers, instance, pki, queues):
    queues(instance)
    server = tlskit.start_smtpd(servers, instance, cert_for(instance, pki),
                                UCSPITLS="!")
    result = subprocess.run(
        ["swaks", "--server", "127.0.0.1", "--port", str(server.port),
         "--tls", "--tls-verify", "--tls-ca-path", str(pki["ca"]),
         "--tls-sni", "localhost", "--ehlo", "swaks.test",
         "--from", SENDER, "--to", DEMO, "--header", "Subject: swaks",
         "--body", "by swaks", "--timeout", "20"],
        capture_output=True, timeout=60)
    out = result.stdout.decode(errors="replace")
    assert result.returncode == 0, out + result.stderr.decode()
    assert "<-  220 ready for tls" in out, out
    data = delivered(instance)
    assert received_with(data).startswith("ESMTPS (TLS_AES_")
    assert b"Subject: swaks" in data
    wait_no_children(server)


# ---- inbound: the UCSPITLS policy ----


POLICIES = {
    # name: (environment, STARTTLS advertised, MAIL before STARTTLS)
    "unset": ({}, False, "250 ok"),
    "dash": ({"UCSPITLS": "-"}, False, "250 ok"),
    "empty": ({"UCSPITLS": ""}, True, "250 ok"),
    "other": ({"UCSPITLS": "yes"}, True, "250 ok"),
    "required": ({"UCSPITLS": "!"}, True, REQUIRE_530),
    "disabled": ({"UCSPITLS": "!", "DISABLETLS": "1"}, False, "250 ok"),
}


@pytest.mark.parametrize("name", POLICIES)
def test_ucspitls_policy(servers, instance, pki, name):
    env, offered, mail_reply = POLICIES[name]
    server = tlskit.start_smtpd(servers, instance, cert_for(instance, pki),
                                **env)
    c = tlskit.RawSmtp("127.0.0.1", server.port)
    try:
        assert c.reply() == ["220 example.test ESMTP"]
        ehlo = c.command("EHLO client.test")
        assert ("250-STARTTLS" in ehlo) == offered, ehlo
        assert c.command(f"MAIL FROM:<{SENDER}>") == [mail_reply]
        assert c.command("RSET") == ["250 flushed"]
        if not offered:
            assert c.command("STARTTLS") == ["502 TLS not available (#5.5.1)"]
            assert c.command("QUIT") == ["221 example.test"]
            return
        assert c.command("STARTTLS") == ["220 ready for tls"]
        c.start_tls(tlskit.client_context(pki))
        ehlo = c.command("EHLO client.test")
        assert ehlo[0] == "250-example.test"
        assert "250-STARTTLS" not in ehlo
        assert c.command(f"MAIL FROM:<{SENDER}>") == ["250 ok"]
        assert c.command(f"RCPT TO:<{DEMO}>") == ["250 ok"]
        assert c.command("QUIT") == ["221 example.test"]
    finally:
        c.close()
    wait_no_children(server)


def test_policy_variables_do_not_reach_qmail_queue(servers, instance, pki):
    """UCSPITLS and DISABLETLS are removed once read; the SSL_* block is
    in the environment of qmail-queue."""
    script, dump = tlskit.env_dumper(instance)
    server = tlskit.start_smtpd(servers, instance, cert_for(instance, pki),
                                UCSPITLS="", DISABLETLS=None,
                                QMAILQUEUE=script)
    with smtplib.SMTP("127.0.0.1", server.port, timeout=20) as smtp:
        smtp.starttls(context=tlskit.client_context(pki))
        assert smtp.sendmail(SENDER, [DEMO], BODY) == {}
    env = qmtest.parse_env_output(dump.read_bytes())
    assert "UCSPITLS" not in env and "DISABLETLS" not in env
    assert env["SSL_PROTOCOL"] == "TLSv1.3"
    assert env["SSL_CIPHER"] == TLS13_CIPHER
    assert env["SSL_CLIENT_VERIFY"] == "NONE"
    wait_no_children(server)


# ---- inbound: implicit TLS (port 465 style) ----


def test_smtps(servers, instance, pki, queues):
    queues(instance)
    server = tlskit.start_smtpd(servers, instance, cert_for(instance, pki),
                                delayed=False, SMTPS="1")
    with smtplib.SMTP_SSL("127.0.0.1", server.port, timeout=20,
                          context=tlskit.client_context(pki),
                          local_hostname="client.test") as smtp:
        smtp.ehlo()
        assert not smtp.has_extn("starttls")
        assert smtp.docmd("STARTTLS") == (502, b"TLS not available (#5.5.1)")
        assert smtp.sendmail(SENDER, [DEMO], BODY) == {}
    data = delivered(instance)
    assert received_with(data) == f"ESMTPS ({TLS13_CIPHER} encrypted)"
    wait_no_children(server)


# ---- inbound: STARTTLS misuse ----


def test_second_starttls_and_arguments(servers, instance, pki):
    server = tlskit.start_smtpd(servers, instance, cert_for(instance, pki),
                                UCSPITLS="")
    c = tlskit.RawSmtp("127.0.0.1", server.port)
    try:
        c.reply()
        c.command("EHLO client.test")
        assert c.command("STARTTLS now") == [
            "501 STARTTLS takes no arguments (#5.5.4)"]
        assert c.command("starttls TLS1.3 please") == [
            "501 STARTTLS takes no arguments (#5.5.4)"]
        assert c.command("STARTTLS") == ["220 ready for tls"]
        c.start_tls(tlskit.client_context(pki))
        assert c.command("STARTTLS") == ["502 TLS not available (#5.5.1)"]
        assert c.command("EHLO client.test")[0] == "250-example.test"
        assert c.command("STARTTLS") == ["502 TLS not available (#5.5.1)"]
        assert c.command("NOOP") == ["250 ok"]
        assert c.command("QUIT") == ["221 example.test"]
    finally:
        c.close()
    wait_no_children(server)


@pytest.mark.parametrize("what", ["garbage", "close"])
def test_broken_handshake_leaves_no_process(servers, instance, pki, what):
    server = tlskit.start_smtpd(servers, instance, cert_for(instance, pki),
                                UCSPITLS="")
    c = tlskit.RawSmtp("127.0.0.1", server.port)
    c.reply()
    c.command("EHLO client.test")
    assert c.command("STARTTLS") == ["220 ready for tls"]
    pids = [pid for pid, _ in tlskit.session_pids(server)]
    assert "qmail-smtpd" in [tlskit.program_of(p) for p in pids]
    if what == "garbage":
        c.send(b"GET / HTTP/1.0\r\n\r\n" + b"\x00" * 200)
        try:
            rest = c.sock.recv(4096)
            # At most a TLS alert record; never an SMTP reply.
            assert rest == b"" or rest[:1] == b"\x15", rest
        except ConnectionResetError:
            pass
    c.close()
    wait_no_children(server)
    assert tlskit.wait_gone(pids)
    if what == "garbage":
        wait_for(lambda: "TLS handshake failed" in server.log_text())


def test_pipelined_command_after_starttls_is_dropped(servers, instance, pki):
    """CVE-2011-0411: RSET sent with STARTTLS in one write is never
    answered; the first reply over TLS is the one to our own EHLO."""
    server = tlskit.start_smtpd(servers, instance, cert_for(instance, pki),
                                UCSPITLS="")
    c = tlskit.RawSmtp("127.0.0.1", server.port)
    try:
        c.reply()
        c.command("EHLO client.test")
        c.send(b"STARTTLS\r\nRSET\r\n")
        assert c.reply() == ["220 ready for tls"]
        c.start_tls(tlskit.client_context(pki))
        assert c.nothing_unasked()
        ehlo = c.command("EHLO again.test")
        assert ehlo[0] == "250-example.test", ehlo
        assert ehlo[-1].startswith("250 SIZE"), ehlo
        assert c.command("NOOP") == ["250 ok"]
        assert c.command("QUIT") == ["221 example.test"]
    finally:
        c.close()
    wait_no_children(server)


def test_starttls_last_in_a_pipelined_group(servers, instance, pki):
    """RFC 2920: STARTTLS may end a pipelined group; the replies to
    what came before it are still given, in cleartext."""
    server = tlskit.start_smtpd(servers, instance, cert_for(instance, pki),
                                UCSPITLS="")
    c = tlskit.RawSmtp("127.0.0.1", server.port)
    try:
        c.reply()
        c.send("EHLO client.test\r\nNOOP\r\nSTARTTLS\r\n")
        assert c.reply()[0] == "250-example.test"
        assert c.reply() == ["250 ok"]
        assert c.reply() == ["220 ready for tls"]
        c.start_tls(tlskit.client_context(pki))
        assert c.command("EHLO client.test")[0] == "250-example.test"
        assert c.command("QUIT") == ["221 example.test"]
    finally:
        c.close()
    wait_no_children(server)


def test_smuggled_message_is_never_queued(servers, instance, pki):
    server = tlskit.start_smtpd(servers, instance, cert_for(instance, pki),
                                UCSPITLS="")
    c = tlskit.RawSmtp("127.0.0.1", server.port)
    try:
        c.reply()
        c.command("EHLO client.test")
        c.send("STARTTLS\r\nMAIL FROM:<a@b>\r\n"
               f"RCPT TO:<{DEMO}>\r\nDATA\r\n"
               "Subject: smuggled\r\n\r\nsmuggled\r\n.\r\n")
        assert c.reply() == ["220 ready for tls"]
        c.start_tls(tlskit.client_context(pki))
        assert c.nothing_unasked()
        assert c.command("EHLO client.test")[0] == "250-example.test"
        # No transaction survived: no sender, no recipient.
        assert c.command(f"RCPT TO:<{DEMO}>") == ["503 MAIL first (#5.5.1)"]
        assert c.command("DATA") == ["503 MAIL first (#5.5.1)"]
        assert c.command("QUIT") == ["221 example.test"]
    finally:
        c.close()
    wait_no_children(server)
    assert instance.queue_files() == []


def test_starttls_forgets_the_transaction(servers, instance, pki):
    """RFC 3207: a sender given in cleartext is gone after STARTTLS."""
    server = tlskit.start_smtpd(servers, instance, cert_for(instance, pki),
                                UCSPITLS="")
    c = tlskit.RawSmtp("127.0.0.1", server.port)
    try:
        c.reply()
        assert c.command(f"MAIL FROM:<{SENDER}>") == ["250 ok"]
        assert c.command(f"RCPT TO:<{DEMO}>") == ["250 ok"]
        assert c.command("STARTTLS") == ["220 ready for tls"]
        c.start_tls(tlskit.client_context(pki))
        assert c.command(f"RCPT TO:<{DEMO}>") == ["503 MAIL first (#5.5.1)"]
        assert c.command(f"MAIL FROM:<{SENDER}>") == ["250 ok"]
        assert c.command("QUIT") == ["221 example.test"]
    finally:
        c.close()
    wait_no_children(server)
    assert instance.queue_files() == []


def test_required_tls_without_descriptors(servers, instance):
    """UCSPITLS=! under a plain tcpserver: TLS cannot start, so no MAIL
    is ever accepted (a run-script mistake that fails closed)."""
    env = tlskit.smtpd_env(instance, UCSPITLS="!")
    server = servers.start([str(instance.path / "bin" / "qmail-smtpd")],
                           as_account=instance, env=env)
    c = tlskit.RawSmtp("127.0.0.1", server.port)
    try:
        c.reply()
        assert "250-STARTTLS" not in c.command("EHLO client.test")
        assert c.command("STARTTLS") == ["502 TLS not available (#5.5.1)"]
        assert c.command(f"MAIL FROM:<{SENDER}>") == [REQUIRE_530]
        assert c.command("QUIT") == ["221 example.test"]
    finally:
        c.close()


# ---- inbound: ids and libraries ----


@ROOT
def test_tls_process_and_smtpd_ids(servers, instance, pki):
    cert = cert_for(instance, pki)
    assert cert.stat().st_mode & 0o777 == 0o600 and cert.stat().st_uid == 0
    uid, gid = tlskit.nobody_ids()
    server = tlskit.start_smtpd(servers, instance, cert, UCSPITLS="",
                                SSL_UID=uid, SSL_GID=gid)
    c = tlskit.RawSmtp("127.0.0.1", server.port)
    try:
        c.reply()

        def ids_now():
            procs = dict(tlskit.session_pids(server))
            smtpd = [p for p in procs
                     if tlskit.program_of(p) == "qmail-smtpd"]
            tlsd = [p for p in procs if tlskit.program_of(p) == "ucspi-tlsd"]
            assert len(smtpd) == 1 and len(tlsd) == 1, procs
            assert qmtest.proc_stat(smtpd[0])[1] == tlsd[0]
            return tlskit.status_ids(tlsd[0]), tlskit.status_ids(smtpd[0])

        for phase in ("cleartext", "tls"):
            if phase == "tls":
                c.command("EHLO client.test")
                assert c.command("STARTTLS") == ["220 ready for tls"]
                c.start_tls(tlskit.client_context(pki))
                assert c.command("EHLO client.test")[0] == "250-example.test"
            # The TLS process takes its ids just after forking the
            # application, which may already have greeted us by then.
            qmtest.wait_for(lambda: ids_now()[0]["Uid"] != [0] * 4,
                            message="the TLS process to leave root")
            tls_ids, smtpd_ids = ids_now()
            assert tls_ids["Uid"] == [uid] * 4, phase
            assert tls_ids["Gid"] == [gid] * 4, phase
            assert tls_ids["Groups"] == [gid], phase
            assert smtpd_ids["Uid"] == [instance.uid] * 4, phase
            assert smtpd_ids["Gid"] == [instance.gid] * 4, phase
        assert c.command("QUIT") == ["221 example.test"]
    finally:
        c.close()
    wait_no_children(server)


def test_mail_programs_do_not_link_openssl(bindir):
    for name in ("qmail-smtpd", "qmail-rsmtp", "qmail-remote"):
        out = subprocess.run(["readelf", "-d", str(bindir / name)],
                             capture_output=True, timeout=30)
        assert out.returncode == 0, out.stderr
        needed = re.findall(rb"\(NEEDED\)\s+Shared library: \[([^\]]+)\]",
                            out.stdout)
        # No NEEDED entry at all: statically linked (with musl, see the
        # Makefile), which the symbol check below covers.
        assert not [n for n in needed
                    if n.startswith((b"libssl", b"libcrypto"))], (name,
                                                                 needed)
        # Nor a static copy of it.
        code = (bindir / name).read_bytes()
        for symbol in (b"SSL_CTX_new", b"OPENSSL_init_ssl", b"EVP_"):
            assert symbol not in code, (name, symbol)
    out = subprocess.run(["readelf", "-d", str(bindir / "ucspi-tlsd")],
                         capture_output=True, timeout=30)
    assert b"libssl" in out.stdout  # the check itself can see OpenSSL


# ---- inbound: tlsclients ----


@pytest.mark.parametrize("cert,relays", [
    ("client_pem", True),      # verified, listed
    ("stranger_pem", False),   # verified, not listed
    ("forged_pem", False),     # listed address, unknown CA
    (None, False)])            # no certificate
def test_tlsclients_relaying(servers, instance, pki, cert, relays):
    instance.control("tlsclients", "Client@Example.test\n")
    server = tlskit.start_smtpd(servers, instance, cert_for(instance, pki),
                                UCSPITLS="", CCAFILE=pki["ca"])
    ctx = tlskit.client_context(pki, cert=pki[cert] if cert else None)
    with smtplib.SMTP("127.0.0.1", server.port, timeout=20) as smtp:
        smtp.starttls(context=ctx)
        smtp.ehlo()
        assert smtp.mail(SENDER)[0] == 250
        code, text = smtp.rcpt("someone@elsewhere.test")
        if relays:
            assert code == 250, text
        else:
            assert (code, text) == (553, b"sorry, that domain isn't in my "
                                    b"list of allowed rcpthosts (#5.7.1)")
        assert smtp.rcpt(DEMO)[0] == 250
    wait_no_children(server)


def test_tlsclients_needs_tls(servers, instance, pki):
    """Only a certificate verified in this session counts: SSL_* names
    in the environment from the start (inherited by mistake) allow
    nothing, in cleartext or over TLS without a certificate."""
    instance.control("tlsclients", "client@example.test\n")
    server = tlskit.start_smtpd(servers, instance, cert_for(instance, pki),
                                UCSPITLS="", CCAFILE=pki["ca"],
                                SSL_CLIENT_VERIFY="SUCCESS",
                                SSL_CLIENT_S_DN_Email="client@example.test")
    with smtplib.SMTP("127.0.0.1", server.port, timeout=20) as smtp:
        smtp.ehlo()
        assert smtp.mail(SENDER)[0] == 250
        assert smtp.rcpt("someone@elsewhere.test")[0] == 553
    # Over TLS without a certificate, the block unsets the stale names.
    with smtplib.SMTP("127.0.0.1", server.port, timeout=20) as smtp:
        smtp.starttls(context=tlskit.client_context(pki))
        smtp.ehlo()
        assert smtp.mail(SENDER)[0] == 250
        assert smtp.rcpt("someone@elsewhere.test")[0] == 553
    wait_no_children(server)


# ---- inbound: the seed's run script under supervise ----


@ROOT
def test_seed_run_script_under_supervise(instance, qm_session_dir,
                                         qm_logbook, queues):
    queues(instance)
    # The certificate as an administrator would make it: mkcert, into
    # control/servercert.pem, mode 0600, root's.
    made = subprocess.run([str(instance.bindir / "mkcert"), "localhost"],
                          env=instance.env(), capture_output=True,
                          timeout=60)
    assert made.returncode == 0, made.stderr
    cert = instance.path / "control" / "servercert.pem"
    assert cert.stat().st_mode & 0o777 == 0o600 and cert.stat().st_uid == 0
    port = qmtest.free_port("127.0.0.1")
    service = qm_session_dir / f"service-{port}"
    service.mkdir(mode=0o755)
    account = instance.account
    log = qm_logbook.new("supervise-smtpd")
    seed = ("env UCSPITLS='' SSL_UID=$(id -u nobody) "
            "SSL_GID=$(id -g nobody) "
            f"CERTFILE={cert} "
            f"sslserver -ne -vRl0 -u $(id -u {account}) "
            f"-g $(id -g {account}) 0 {port} "
            "rblsmtpd -r zen.spamhaus.org qmail-smtpd")
    (service / "run").write_text(
        "#!/bin/sh\n"
        f"exec >>'{log}' 2>&1\n"
        f"PATH='{instance.bindir}':/usr/local/bin:/usr/bin:/bin\n"
        f"QMAILHOME='{instance.path}'\n"
        "RBLSMTPD=''  # no DNS in tests: rblsmtpd lets everyone in\n"
        "export PATH QMAILHOME RBLSMTPD\n"
        f"exec {seed}\n")
    (service / "run").chmod(0o755)
    supervise = subprocess.Popen(["supervise", str(service)],
                                 stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL,
                                 start_new_session=True)
    sid = supervise.pid
    try:
        def listening():
            return any(qmtest.is_listening(pid, port)
                       for pid, _ in qmtest.session_members(sid))

        wait_for(listening, timeout=10, message="the service to listen")
        # "localhost": the name mkcert put in the certificate.
        with smtplib.SMTP("localhost", port, timeout=20,
                          local_hostname="client.test") as smtp:
            smtp.ehlo()
            assert smtp.has_extn("starttls")
            # The self-signed certificate is its own trust anchor.
            ctx = ssl.create_default_context(cafile=str(cert))
            smtp.starttls(context=ctx)
            assert smtp.sock.getpeercert()["subject"] == (
                (("commonName", "localhost"),),)
            smtp.ehlo()
            assert not smtp.has_extn("starttls")
            assert smtp.sendmail(SENDER, [DEMO], BODY) == {}
        data = delivered(instance)
        assert received_with(data).startswith("ESMTPS (TLS_AES_")
        result = subprocess.run(["svc", "-dx", str(service)],
                                capture_output=True, timeout=10)
        assert result.returncode == 0, result.stderr
        supervise.wait(timeout=15)
        wait_for(lambda: not qmtest.session_members(sid), timeout=10,
                 message="every process of the service to end")
    finally:
        qmtest.kill_group(sid, 9)
        try:
            supervise.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        for pid, _ in qmtest.session_members(sid):
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        shutil.rmtree(service, ignore_errors=True)


# ---- outbound: fixtures ----


@pytest.fixture
def dns():
    server = DnsServer()
    server.start()
    server.mx("remote.test", (10, "mx.remote.test"))
    server.a("mx.remote.test", "127.0.0.2")
    yield server
    server.stop()


@pytest.fixture
def sender(instance):
    """The local instance, sending."""
    instance.control("timeoutremote", "20\n")
    return instance


@pytest.fixture
def fake_peers():
    made = []

    def make(*args, **kwargs):
        peer = tlskit.FakePeer(*args, **kwargs)
        made.append(peer)
        return peer

    yield make
    for peer in made:
        peer.close()


def start_peer(servers, inst, pki, name="mx_pem", tls=True, **env):
    """qmail-smtpd of the peer instance under sslserver -n on
    127.0.0.2, with a certificate (mx.remote.test by default)."""
    if tls:
        env.setdefault("UCSPITLS", "")
    return tlskit.start_smtpd(servers, inst, cert_for(inst, pki, name),
                              host="127.0.0.2", localname="remote.test",
                              **env)


def route(sender, port, relay="mx.remote.test"):
    sender.control("smtproutes", f"remote.test:{relay}:{port}\n")


def send(sender, dns, **kwargs):
    return report(run_remote(sender, "remote.test", rcpts=[BOB],
                             dns=dns, timeout=60, **kwargs))


def accepted(out):
    return re.fullmatch(rb"r\0K127\.0\.0\.2 accepted message\.\n"
                        rb"Remote host said: 250 ok\0", out)


def peer_received(inst):
    messages = tlskit.queued_messages(inst)
    assert len(messages) == 1, messages
    return received_with(messages[0])


def z_report(text):
    return f"ZConnected to 127.0.0.2 but {text}\0".encode()


# ---- outbound: against our own qmail-smtpd ----


def test_opportunistic_tls_is_used(sender, dns, servers, peer_instance, pki):
    server = start_peer(servers, peer_instance, pki)
    route(sender, server.port)
    out = send(sender, dns)
    assert accepted(out), out
    assert peer_received(peer_instance) == (
        f"ESMTPS ({TLS13_CIPHER} encrypted)")
    wait_no_children(server)


def test_opportunistic_tls_through_the_queue(sender, dns, servers,
                                             peer_instance, pki, queues):
    server = start_peer(servers, peer_instance, pki)
    route(sender, server.port)
    old = os.environ.get("DNSCACHEIP")
    os.environ["DNSCACHEIP"] = f"127.0.0.1:{dns.port}"
    try:
        queue = queues(sender)
    finally:
        if old is None:
            del os.environ["DNSCACHEIP"]
        else:
            os.environ["DNSCACHEIP"] = old
    result = sender.run([str(sender.path / "bin" / "qmail-inject"), "-f",
                         SENDER, BOB], input=BODY.encode())
    assert result.returncode == 0, result.stderr
    wait_for(lambda: tlskit.queued_messages(peer_instance), timeout=30,
             message="the message at the peer")
    assert peer_received(peer_instance).startswith("ESMTPS (TLS_AES_")
    wait_for(lambda: re.search(r"delivery \d+: success: 127\.0\.0\.2_"
                               r"accepted_message\./", queue.log_text()),
             timeout=30, message="the success line")


def test_tlshosts_verified_delivery(sender, dns, servers, peer_instance,
                                    pki):
    server = start_peer(servers, peer_instance, pki)
    sender.control("tlshosts/mx.remote.test.pem", pki["ca"].read_text())
    route(sender, server.port)
    out = send(sender, dns)
    assert accepted(out), out
    assert peer_received(peer_instance).startswith("ESMTPS (TLS_AES_")


@pytest.mark.parametrize("case", ["wrong_ca", "wrong_name", "no_starttls"])
def test_tlshosts_failures_are_temporary(sender, dns, servers,
                                         peer_instance, pki, case):
    ca = pki["otherca"] if case == "wrong_ca" else pki["ca"]
    sender.control("tlshosts/mx.remote.test.pem", ca.read_text())
    if case == "no_starttls":
        server = start_peer(servers, peer_instance, pki, tls=False)
    else:
        server = start_peer(servers, peer_instance, pki,
                            "otherhost_pem" if case == "wrong_name"
                            else "mx_pem")
    route(sender, server.port)
    out = send(sender, dns)
    expected = {
        "wrong_ca": "its certificate did not verify: FAILED:unable to get "
                    "local issuer certificate. (#4.7.5)",
        "wrong_name": "its certificate did not verify: FAILED:certificate "
                      "name does not match mx.remote.test. (#4.7.5)",
        "no_starttls": "it does not offer STARTTLS, which I require for "
                       "it. (#4.7.0)",
    }[case]
    assert out == z_report(expected), out
    assert tlskit.queued_messages(peer_instance) == []
    wait_no_children(server)


def test_tlshosts_starttls_refused(sender, dns, fake_peers, pki):
    peer = fake_peers(plan=["refuse"])
    sender.control("tlshosts/mx.remote.test.pem", pki["ca"].read_text())
    route(sender, peer.port)
    out = send(sender, dns)
    assert out == z_report("STARTTLS was refused, and I require TLS for "
                           "it.\nRemote host said: 454 4.7.0 TLS not "
                           "available now"), out
    assert len(peer.sessions) == 1
    assert [s["data"] for s in peer.sessions] == [None]


def test_starttls_refused_opportunistic_goes_on_in_cleartext(
        sender, dns, fake_peers):
    peer = fake_peers(plan=["refuse"])
    route(sender, peer.port)
    out = send(sender, dns)
    assert re.fullmatch(rb"r\0K127\.0\.0\.2 accepted message\.\n"
                        rb"Remote host said: 250 2\.0\.0 queued\0", out), out
    [session] = peer.sessions
    verbs = [c.split(" ")[0].split(":")[0] for c in session["commands"]]
    assert verbs[:3] == ["EHLO", "STARTTLS", "MAIL"], verbs
    assert session["data"] is not None


@pytest.mark.parametrize("how", ["notlshosts", "exhaustivelist"])
def test_tls_turned_off_gives_cleartext(sender, dns, servers, peer_instance,
                                        pki, how):
    server = start_peer(servers, peer_instance, pki)
    if how == "notlshosts":
        sender.control("notlshosts/mx.remote.test", "")
    else:
        sender.control("tlshosts/exhaustivelist", "")
        sender.control("tlshosts/other.remote.test.pem",
                       pki["ca"].read_text())
    route(sender, server.port)
    out = send(sender, dns)
    assert accepted(out), out
    assert peer_received(peer_instance) == "ESMTP"


def test_tlshosts_wins_over_notlshosts(sender, dns, servers, peer_instance,
                                       pki):
    server = start_peer(servers, peer_instance, pki)
    sender.control("notlshosts/mx.remote.test", "")
    sender.control("tlshosts/exhaustivelist", "")
    sender.control("tlshosts/mx.remote.test.pem", pki["ca"].read_text())
    route(sender, server.port)
    assert accepted(send(sender, dns))
    assert peer_received(peer_instance).startswith("ESMTPS (")


def test_client_certificate_is_presented(sender, dns, servers,
                                         peer_instance, pki):
    """The peer's qmail-queue is a script that keeps its environment:
    the SSL_CLIENT_* names ucspi-tlsd reported reach it."""
    script, dump = tlskit.env_dumper(peer_instance)
    server = start_peer(servers, peer_instance, pki, CCAFILE=pki["ca"],
                        QMAILQUEUE=script)
    clientcert = sender.control("clientcert.pem",
                                pki["client_pem"].read_text())
    clientcert.chmod(0o600)
    route(sender, server.port)
    assert accepted(send(sender, dns))
    env = qmtest.parse_env_output(dump.read_bytes())
    assert env["SSL_CLIENT_VERIFY"] == "SUCCESS"
    assert env["SSL_CLIENT_S_DN"] == (
        "emailAddress=client@example.test,CN=client.example.test")
    assert env["SSL_CLIENT_S_DN_Email"] == "client@example.test"
    assert env["SSL_CLIENT_I_DN"] == "CN=QM Mail CA"


def test_client_certificate_lets_us_relay(sender, dns, servers,
                                          peer_instance, pki):
    """The peer takes mail for other domains only from a listed
    certificate (tlsclients): our client certificate gets it through."""
    peer_instance.control("rcpthosts", "elsewhere.test\n")
    peer_instance.control("tlsclients", "client@example.test\n")
    server = start_peer(servers, peer_instance, pki, CCAFILE=pki["ca"])
    route(sender, server.port)
    refused = send(sender, dns)
    assert refused.startswith(b"h127.0.0.2 does not like recipient.\n"
                              b"Remote host said: 553 "), refused
    sender.control("clientcert.pem", pki["client_pem"].read_text())
    assert accepted(send(sender, dns))


def test_broken_handshake_is_retried_in_cleartext(sender, dns, fake_peers):
    peer = fake_peers(plan=["garbage", "plain"])
    route(sender, peer.port)
    out = send(sender, dns)
    assert re.fullmatch(rb"r\0K127\.0\.0\.2 accepted message\.\n"
                        rb"Remote host said: 250 2\.0\.0 queued\0", out), out
    assert len(peer.sessions) == 2
    first, second = peer.sessions
    assert first["commands"][-1] == "STARTTLS"
    assert first["data"] is None
    verbs = [c.split(" ")[0].split(":")[0] for c in second["commands"]]
    assert "STARTTLS" not in verbs, verbs
    assert verbs[:2] == ["EHLO", "MAIL"], verbs
    assert second["data"].endswith(b"A second line.\r\n")


def test_broken_handshake_with_tlshosts_is_temporary(sender, dns,
                                                     fake_peers, pki):
    peer = fake_peers(plan=["garbage", "plain"])
    sender.control("tlshosts/mx.remote.test.pem", pki["ca"].read_text())
    route(sender, peer.port)
    out = send(sender, dns)
    assert out == z_report("the TLS handshake failed. (#4.7.0)"), out
    assert len(peer.sessions) == 1


@pytest.mark.parametrize("required", [False, True],
                         ids=["opportunistic", "required"])
def test_tls_program_that_cannot_start(sender, dns, servers, peer_instance,
                                       pki, required):
    """An unusable tlsclientciphers stops ucspi-tlsc before any TLS: an
    opportunistic host gets the mail in cleartext on a second
    connection, a required one gets none (Z)."""
    server = start_peer(servers, peer_instance, pki)
    sender.control("tlsclientciphers", "NO-SUCH-CIPHER\n")
    if required:
        sender.control("tlshosts/mx.remote.test.pem", pki["ca"].read_text())
    route(sender, server.port)
    result = run_remote(sender, "remote.test", rcpts=[BOB], dns=dns,
                        timeout=60)
    out = report(result)
    assert b"CIPHERS NO-SUCH-CIPHER" in result.stderr
    if required:
        assert out.startswith(b"Z"), out
        assert tlskit.queued_messages(peer_instance) == []
    else:
        assert accepted(out), out
        assert peer_received(peer_instance) == "ESMTP"


def test_injected_reply_after_starttls_is_dropped(sender, dns, fake_peers,
                                                  pki):
    """The client side of CVE-2011-0411: a reply that arrives with the
    220 to STARTTLS (written there by a man in the middle) is discarded;
    only what comes over TLS counts."""
    peer = fake_peers(plan=["inject", "plain"], cert=pki["mx_pem"])
    sender.control("tlshosts/mx.remote.test.pem", pki["ca"].read_text())
    route(sender, peer.port)
    out = send(sender, dns)
    assert re.fullmatch(rb"r\0K127\.0\.0\.2 accepted message\.\n"
                        rb"Remote host said: 250 2\.0\.0 queued\0", out), out
    [session] = peer.sessions
    assert session["commands"] == ["EHLO example.test", "STARTTLS"]
    verbs = [c.split(" ")[0].split(":")[0] for c in session["tls_commands"]]
    assert verbs == ["EHLO", "MAIL", "RCPT", "DATA", "QUIT"], verbs
    assert session["data"].endswith(b"A second line.\r\n")


def test_opportunistic_tls_does_not_check_the_certificate(
        sender, dns, servers, peer_instance, pki):
    server = start_peer(servers, peer_instance, pki, "otherhost_pem")
    route(sender, server.port)
    assert accepted(send(sender, dns))
    assert peer_received(peer_instance).startswith("ESMTPS (")


def test_tls_policy_follows_the_mx_name(sender, dns, servers, peer_instance,
                                        pki, fake_peers):
    """tlshosts names the exchanger, not the recipient's domain; a
    required host that fails stops the delivery (Z) before the next MX
    is tried."""
    server = start_peer(servers, peer_instance, pki)
    backup = fake_peers(host="127.0.0.3", port=server.port)
    dns.mx("remote.test", (20, "mx2.remote.test"))
    dns.a("mx2.remote.test", "127.0.0.3")
    sender.control("smtproutes", f"remote.test::{server.port}\n")
    # A CA file for the domain means nothing: the MX is mx.remote.test.
    sender.control("tlshosts/remote.test.pem", pki["otherca"].read_text())
    assert accepted(send(sender, dns))
    assert peer_received(peer_instance).startswith("ESMTPS (")
    assert backup.sessions == []
    sender.control("tlshosts/mx.remote.test.pem", pki["otherca"].read_text())
    out = send(sender, dns)
    assert out == z_report("its certificate did not verify: FAILED:unable "
                           "to get local issuer certificate. (#4.7.5)"), out
    assert backup.sessions == []
    assert len(tlskit.queued_messages(peer_instance)) == 1


def test_tlshosts_file_name_is_the_lowercase_host(sender, dns, servers,
                                                  peer_instance, pki):
    """A relay written MX.Remote.TEST. finds tlshosts/mx.remote.test.pem
    (lower case, no final dot) and is checked under that name."""
    server = start_peer(servers, peer_instance, pki)
    route(sender, server.port, relay="MX.Remote.TEST.")
    sender.control("tlshosts/mx.remote.test.pem", pki["otherca"].read_text())
    out = send(sender, dns)
    assert out.startswith(b"ZConnected to 127.0.0.2 but its certificate "
                          b"did not verify: "), out
    sender.control("tlshosts/mx.remote.test.pem", pki["ca"].read_text())
    assert accepted(send(sender, dns))
    assert peer_received(peer_instance).startswith("ESMTPS (")


# ---- outbound: implicit TLS on port 465 ----


@ROOT
@pytest.mark.parametrize("ca", [None, "ca", "otherca"])
def test_port_465_is_implicit_tls(sender, dns, servers, peer_instance, pki,
                                  ca):
    if not tlskit.port_free("127.0.0.2", 465):
        pytest.skip("port 465 of 127.0.0.2 is taken")
    server = tlskit.start_smtpd_on(servers, peer_instance,
                                   cert_for(peer_instance, pki, "mx_pem"),
                                   "127.0.0.2", 465, delayed=False,
                                   SMTPS="1")
    if ca:
        sender.control("tlshosts/mx.remote.test.pem", pki[ca].read_text())
    route(sender, 465)
    out = send(sender, dns)
    if ca == "otherca":
        # (Unlike after STARTTLS, the report does not say why.)
        assert out.startswith(b"ZConnected to 127.0.0.2 but its "
                              b"certificate did not verify"), out
        assert out.endswith(b"(#4.7.5)\0"), out
        assert tlskit.queued_messages(peer_instance) == []
    else:
        assert accepted(out), out
        assert peer_received(peer_instance) == (
            f"ESMTPS ({TLS13_CIPHER} encrypted)")
    servers.stop(server)
    assert tlskit.port_free("127.0.0.2", 465)


# ---- outbound: Postfix ----


# Postfix's TLS needs its session cache and entropy server.
TLSMGR_CF = "tlsmgr    unix  -       -       n       1000?   1       tlsmgr\n"


@pytest.fixture
def postfix_tls(pki, qm_logbook, monkeypatch):
    monkeypatch.setattr(foreign, "MASTER_CF", foreign.MASTER_CF + TLSMGR_CF)
    if not foreign.postfix_installed():
        pytest.skip("Postfix is not installed")
    if not is_root():
        pytest.skip("Postfix's master must be started as root")
    top = qmtest.make_public_tempdir("qm-postfix-tls-")
    keys = top / "tls"
    keys.mkdir(mode=0o755)
    cert = keys / "cert.pem"
    key = keys / "key.pem"
    cert.write_bytes(pki["smtpd_crt"].read_bytes())
    key.write_bytes(pki["smtpd_key"].read_bytes())
    key.chmod(0o600)
    extra = (f"smtpd_tls_cert_file = {cert}\n"
             f"smtpd_tls_key_file = {key}\n"
             "smtpd_tls_security_level = may\n"
             "smtpd_tls_received_header = yes\n"
             "smtpd_tls_loglevel = 1\n")
    server = foreign.Postfix(top, extra=extra)
    try:
        try:
            server.start()
        except foreign.PostfixError as e:
            pytest.fail(str(e), pytrace=False)
        yield server
    finally:
        left = server.stop()
        with open(qm_logbook.new("postfix-maillog"), "w") as f:
            f.write(server.log_text())
        server.remove()
    assert not left, f"postfix processes survived: {left!r}"


def test_postfix_opportunistic_tls(sender, postfix_tls):
    sender.control("smtproutes", f"remote.test:[127.0.0.1]:"
                   f"{postfix_tls.port}\n")
    out = report(run_remote(sender, "remote.test", rcpts=[BOB],
                            timeout=60))
    assert re.fullmatch(rb"r\0K127\.0\.0\.1 accepted message\.\n"
                        rb"Remote host said: 250 2\.0\.0 Ok: queued as "
                        rb"[0-9A-F]+\0", out), out
    [(_, data)] = wait_for(postfix_tls.messages, timeout=20,
                           message="the message in Postfix's Maildir")
    assert re.search(rb"\n\tby postfix\.remote\.test \(Postfix\) with "
                     rb"ESMTPS id ", data), data[:800]
    wait_for(lambda: re.search(r"TLS connection established from "
                               r"\S+: TLSv1\.3", postfix_tls.log_text()),
             timeout=10, message="Postfix's TLS log line")
