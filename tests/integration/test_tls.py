"""The REST API over TLS (restapi.certfile/keyfile/cafile, verify_client) against a real
two-node cluster, with certificates made by openssl for this test:

- every member publishes an https:// api_url and answers HTTPS with its certificate;
  plain HTTP and a client that does not trust the CA get no answer;
- verify_client: optional lets GETs through without a client certificate (HAProxy checks)
  but refuses a write without one, or with one the CA did not sign (403, nothing done);
- pgwardenctl reaches the members over HTTPS with ctl.certfile as its client certificate;
- HAProxy checks the members with check-ssl against the CA and routes to the primary.
"""

import base64
import json
import os
import ssl
import subprocess
import urllib.error
import urllib.request

import pytest

import harness
from test_ctl import ctl
from test_routing import HAPROXY_BIN, HAProxy, _need

USER, PASSWORD = "admin", "pgwt-tls-secret"


def post(node, path, context, auth=(USER, PASSWORD), body=None):
    """(status, text) of a POST to node over HTTPS; (None, reason) when nothing answered."""
    req = urllib.request.Request(node.rest_url(path), data=json.dumps(body or {}).encode(),
                                 method="POST", headers={"Content-Type": "application/json"})
    if auth:
        req.add_header("Authorization",
                       "Basic " + base64.b64encode(("%s:%s" % auth).encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=30, context=context) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except (urllib.error.URLError, OSError) as e:
        return None, str(e)


def test_rest_api_over_tls(make_cluster):
    c = make_cluster(2, start=False)
    f = harness.make_tls(os.path.join(c.dir, "tls"))
    for n in c.nodes:
        n.config = harness.deep_merge(n.config, {
            "restapi": {"certfile": f["cert"], "keyfile": f["key"], "cafile": f["ca"],
                        "verify_client": "optional",
                        "authentication": {"username": USER, "password": PASSWORD}},
            "ctl": {"certfile": f["client_cert"], "keyfile": f["client_key"]}})
        n.write_config()
    c.start()
    leader = c.wait_healthy(180)
    replica = [n for n in c.nodes if n is not leader][0]

    # HTTPS with the CA: the role checks answer as over HTTP
    assert leader.rest("/primary")[0] == 200
    assert replica.rest("/replica")[0] == 200
    members = {k.rsplit("/", 1)[1]: json.loads(v)
               for k, v in c.etcd.get_prefix(c.prefix + "members/").items()}
    for n in c.nodes:
        assert members[n.name]["api_url"] == "https://127.0.0.1:%d/patroni" % n.rest_port

    # plain HTTP, or a client that does not trust our CA: no answer
    assert harness.http_get("http://127.0.0.1:%d/primary" % leader.rest_port)[0] is None
    assert harness.http_get(leader.rest_url("/primary"),
                            context=ssl.create_default_context())[0] is None

    # verify_client optional: a write needs a client certificate signed by the CA
    trusted = harness.tls_context(f["ca"])
    st, text = post(leader, "/reload", trusted)
    assert st == 403 and "client certificate" in text, (st, text)
    st, text = post(leader, "/reload", harness.tls_context(f["ca"], (f["rogue_cert"],
                                                                      f["rogue_key"])))
    assert st in (403, None), (st, text)  # refused by us, or by GnuTLS in the handshake
    good = harness.tls_context(f["ca"], (f["client_cert"], f["client_key"]))
    assert post(leader, "/reload", good, auth=None)[0] == 401
    st, text = post(leader, "/reload", good)
    assert st == 200, (st, text)

    # pgwardenctl: HTTPS to every member with ctl.certfile
    rc, out, err = ctl(c, "reload", c.scope, "--force")
    assert rc == 0 and out.count("Success: reload") == 2, out + err

    # HAProxy checks over TLS, verifying the members' certificate against the CA
    _need(HAPROXY_BIN, "haproxy")
    hap = HAProxy(c)
    hap.check_extra = "check-ssl verify required ca-file %s" % f["ca"]
    hap.start()
    try:
        hap.wait_up("pg_primary", [leader.name], timeout=30, cluster=c)
        hap.wait_up("pg_replica", [replica.name], timeout=30, cluster=c)
        out = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(hap.write_port), "-U",
                              harness.SUPERUSER, "-Atc", "SELECT pg_is_in_recovery()",
                              "postgres"], capture_output=True, text=True, timeout=30,
                             env=harness.clean_env({"PGPASSWORD": harness.SUPERUSER_PASSWORD}))
        assert out.stdout.strip() == "f", out.stdout + out.stderr
    finally:
        hap.cleanup()


@pytest.mark.parametrize("key, value, why", [
    ("certfile", "/nonexistent/cert.pem", "restapi.certfile /nonexistent/cert.pem: cannot read"),
])
def test_unreadable_certificate_is_a_clear_error(make_cluster, key, value, why):
    c = make_cluster(1, start=False)
    n = c.nodes[0]
    n.config = harness.deep_merge(n.config, {"restapi": {key: value}})
    n.write_config()
    c.etcd.start()
    n.start()
    assert n.wait_exit(30) != 0
    assert why in n.log_text(), n.log_text()[-2000:]
