"""A real Kubernetes API server for tests: etcd and kube-apiserver as local processes.

What controller-runtime's envtest does, in Python: a throwaway PKI (CA, serving certificate,
an admin client certificate in system:masters, a service-account key), etcd on loopback, the API
server on loopback with RBAC on, and a kubeconfig. The binaries are built from their Go modules
by ``hack/k8s-tools.sh`` into ``~/.cache/tollgate/tools/bin`` (TOLLGATE_TOOLS to move it).

With ``TOLLGATE_TEST_KUBECONFIG`` set, tests use that cluster instead (e.g. kind), unchanged.
"""

from __future__ import annotations

import base64
import os
import shutil
import ssl
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from tollgate_testkit.pki import cert, dn, new_key, pem_key
from tollgate_testkit.ports import free_port
from tollgate_testkit.procs import Proc

TOOLS = Path(os.environ.get("TOLLGATE_TOOLS", Path.home() / ".cache/tollgate/tools")) / "bin"


def tool(name: str) -> Path | None:
    """A built tool, or one on PATH."""
    p = TOOLS / name
    if p.exists():
        return p
    found = shutil.which(name)
    return Path(found) if found else None


@dataclass
class Pki:
    ca: Path
    serving_cert: Path
    serving_key: Path
    client_cert: Path
    client_key: Path
    sa_key: Path


def make_pki(d: Path) -> Pki:
    d.mkdir(parents=True, exist_ok=True)
    ca_key = new_key()
    ca_name = dn("tollgate-test-ca")
    ca = cert(ca_name, ca_key, ca_name, ca_key, ca=True)
    srv_key, cli_key, sa_key = new_key(), new_key(), new_key()
    srv = cert(dn("localhost"), srv_key, ca_name, ca_key, server=True)
    cli = cert(dn("admin", "system:masters"), cli_key, ca_name, ca_key)
    files = {
        "ca.crt": ca.public_bytes(serialization.Encoding.PEM),
        "apiserver.crt": srv.public_bytes(serialization.Encoding.PEM),
        "apiserver.key": pem_key(srv_key),
        "admin.crt": cli.public_bytes(serialization.Encoding.PEM),
        "admin.key": pem_key(cli_key),
        "sa.key": pem_key(sa_key),
        "sa.pub": sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    }
    for name, data in files.items():
        (d / name).write_bytes(data)
    return Pki(
        d / "ca.crt",
        d / "apiserver.crt",
        d / "apiserver.key",
        d / "admin.crt",
        d / "admin.key",
        d / "sa.key",
    )


def kubeconfig(server: str, pki: Pki) -> str:
    def b64(p: Path) -> str:
        return base64.b64encode(p.read_bytes()).decode()

    return f"""apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: {{server: "{server}", certificate-authority-data: {b64(pki.ca)}}}
users:
- name: admin
  user: {{client-certificate-data: {b64(pki.client_cert)}, client-key-data: {b64(pki.client_key)}}}
contexts:
- name: test
  context: {{cluster: test, user: admin}}
current-context: test
"""


class ApiServer:
    """etcd + kube-apiserver on loopback; ``kubeconfig`` is a file path for clients."""

    def __init__(self, workdir: Path) -> None:
        etcd, apiserver = tool("etcd"), tool("kube-apiserver")
        if etcd is None or apiserver is None:
            raise FileNotFoundError("etcd/kube-apiserver not built: run `make install`")
        self.workdir = workdir
        pki = make_pki(workdir / "pki")
        etcd_port, peer_port, self.port = free_port(), free_port(), free_port()
        self.etcd = Proc(
            [
                str(etcd),
                f"--data-dir={workdir / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
                f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
                f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-cluster=default=http://127.0.0.1:{peer_port}",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
            log=workdir / "etcd.log",
        )
        try:
            self.etcd.wait_http(f"http://127.0.0.1:{etcd_port}/health", timeout=30)
            self.apiserver = Proc(
                [
                    str(apiserver),
                    f"--etcd-servers=http://127.0.0.1:{etcd_port}",
                    f"--secure-port={self.port}",
                    "--bind-address=127.0.0.1",
                    "--advertise-address=127.0.0.1",
                    f"--tls-cert-file={pki.serving_cert}",
                    f"--tls-private-key-file={pki.serving_key}",
                    f"--client-ca-file={pki.ca}",
                    "--authorization-mode=RBAC",
                    "--service-cluster-ip-range=10.0.0.0/24",
                    "--disable-admission-plugins=ServiceAccount",
                    f"--service-account-issuer=https://127.0.0.1:{self.port}",
                    f"--service-account-key-file={pki.sa_key.with_suffix('.pub')}",
                    f"--service-account-signing-key-file={pki.sa_key}",
                    "--endpoint-reconciler-type=none",
                    "--enable-priority-and-fairness=false",
                    f"--cert-dir={workdir / 'certs'}",
                ],
                log=workdir / "apiserver.log",
            )
            self._wait_ready(pki.ca)
        except BaseException:
            self.stop()
            raise
        self.kubeconfig = workdir / "kubeconfig"
        self.kubeconfig.write_text(kubeconfig(f"https://127.0.0.1:{self.port}", pki))

    def _wait_ready(self, ca: Path, timeout: float = 90.0) -> None:
        ctx = ssl.create_default_context(cafile=str(ca))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.apiserver.alive():
                raise RuntimeError(f"kube-apiserver exited:\n{self.apiserver.output()[-3000:]}")
            try:
                with urllib.request.urlopen(
                    f"https://127.0.0.1:{self.port}/readyz", context=ctx, timeout=2
                ) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"kube-apiserver not ready:\n{self.apiserver.output()[-3000:]}")

    def stop(self) -> None:
        if getattr(self, "apiserver", None) is not None:
            self.apiserver.stop()
        self.etcd.stop()
