"""infra/compose.tls.yml (mutual TLS between the containers) stays wired to docker-compose.yml, and
infra/envoy-tls.yaml stays infra/envoy.yaml plus mutual TLS to every cluster."""

from __future__ import annotations

import copy
from typing import Any

from modelog.shared.settings import SERVICES
from tests.unit.test_compose import ENVOY, ROOT, _command, _env, _yaml

OVERRIDE = ROOT / "infra" / "compose.tls.yml"
ENVOY_TLS = ROOT / "infra" / "envoy-tls.yaml"


def test_every_service_serves_and_requires_tls_with_its_own_certificate() -> None:
    services = _yaml(OVERRIDE)["services"]
    issued = _command(services["certs"])
    for name in (*SERVICES, "envoy"):
        assert f" {name}" in issued, f"the certs container issues no certificate for {name}"
    for name in SERVICES:
        env = _env(services[name])
        assert env["MODELOG_TLS_CERT"] == f"/certs/{name}.pem"
        assert env["MODELOG_TLS_KEY"] == f"/certs/{name}-key.pem"
        assert env["MODELOG_TLS_CLIENT_CA"] == env["MODELOG_CA_FILE"] == "/certs/ca.pem"
        assert services[name]["depends_on"]["certs"]["condition"] == "service_completed_successfully"
    mounts = {str(v).split(":")[1]: str(v).split(":")[0] for v in services["envoy"]["volumes"]}
    assert (ROOT / mounts["/etc/envoy/envoy.yaml"]).resolve() == ENVOY_TLS


def _without_tls(doc: dict[str, Any]) -> dict[str, Any]:
    plain = copy.deepcopy(doc)
    for cluster in plain["static_resources"]["clusters"]:
        cluster.pop("transport_socket")
    return plain


def test_envoy_tls_is_envoy_plus_mutual_tls_to_each_cluster() -> None:
    tls_doc = _yaml(ENVOY_TLS)
    assert _without_tls(tls_doc) == _yaml(ENVOY), "regenerate infra/envoy-tls.yaml (infra/compose.md)"
    for cluster in tls_doc["static_resources"]["clusters"]:
        ctx = cluster["transport_socket"]["typed_config"]
        assert ctx["sni"] == cluster["name"]
        common = ctx["common_tls_context"]
        assert common["tls_certificates"][0]["certificate_chain"]["filename"] == "/certs/envoy.pem"
        assert common["validation_context"]["trusted_ca"]["filename"] == "/certs/ca.pem"
