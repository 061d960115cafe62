#!/usr/bin/env bash
# Static checks of deploy files that cannot run here (no Docker engine): the compose file parses
# and names only images, env and configs that exist.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
python3 - "$ROOT" <<'PY'
import sys, pathlib
root = pathlib.Path(sys.argv[1])
compose = (root / "docker-compose.yml").read_text()
import yaml
doc = yaml.safe_load(compose)
services = doc["services"]
for name in ["DATABASE_URL", "DATABASE_REPLICA_URL", "REDIS_URL", "WECHAT_APPID", "WECHAT_SECRET",
             "WECHAT_TOKEN", "WECHAT_API_BASE", "OTEL_EXPORTER_OTLP_ENDPOINT", "RUST_LOG"]:
    assert name in compose, f"docker-compose.yml does not pass {name}"
for name, svc in services.items():
    if svc.get("restart") == "no":
        continue  # one-shot steps (migrations) need no healthcheck
    assert "healthcheck" in svc, f"compose service {name} has no healthcheck"
    for dep, cond in (svc.get("depends_on") or {}).items():
        assert dep in services, f"{name} depends on unknown service {dep}"
        assert cond.get("condition") in ("service_healthy", "service_completed_successfully"), name
    for volume in svc.get("volumes", []):
        source = volume.split(":")[0]
        if source.startswith("./"):
            assert (root / source).exists(), f"{name} mounts missing {source}"
    for port in svc.get("ports", []):
        assert not any(p in str(port) for p in ("50051", "50052", "50053")), "gRPC ports stay internal"
for svc in ["mysql-primary", "mysql-replica", "redis", "membership", "gateway", "sandbox"]:
    assert svc in services, f"compose service {svc} missing"
assert services["sandbox"].get("profiles") == ["sandbox"]
env_example = (root / ".env.example").read_text()
import re
for var in set(re.findall(r"\$\{([A-Z_]+)", compose)):
    assert var in env_example, f".env.example does not document {var}"
print("deploy files: ok")
PY
