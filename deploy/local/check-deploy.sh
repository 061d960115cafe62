#!/usr/bin/env bash
# Static checks of deploy files that cannot run here (no Docker engine): the compose file parses
# and names only images, env and configs that exist.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
python3 - "$ROOT" <<'PY'
import sys, pathlib
root = pathlib.Path(sys.argv[1])
compose = (root / "docker-compose.yml").read_text()
try:
    import yaml  # PyYAML when present gives a full parse
    doc = yaml.safe_load(compose)
    services = doc["services"]
except ImportError:
    services = None
for name in ["DATABASE_URL", "REDIS_URL", "WECHAT_APPID", "WECHAT_SECRET", "WECHAT_TOKEN"]:
    assert name in compose, f"docker-compose.yml does not pass {name}"
if services is not None:
    for svc in ["mysql-primary", "mysql-replica", "redis", "membership", "gateway"]:
        assert svc in services, f"compose service {svc} missing"
        assert "healthcheck" in services[svc], f"compose service {svc} has no healthcheck"
print("deploy files: ok")
PY
