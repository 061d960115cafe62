#!/usr/bin/env bash
# Static checks of deploy files that cannot run here (no Docker engine): the compose file parses
# and names only images, env and configs that exist; the Kubernetes manifests in deploy/k8s/ agree
# with it, and their NetworkPolicies with the calls the programs make; the manifests validate
# against the Kubernetes API's schemas (kubernetes-validate, strict); no file holds a fixed
# replication password, and the replication init script refuses to run without a real one; and no
# tracked file outside docs/ cites a planning document that lives outside the repository.
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
    if svc.get("restart") == "no" or "x-healthcheck-exempt" in svc:
        continue  # one-shot steps (migrations) need no healthcheck; exemptions are checked below
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

# Images: cached dependency layers, locked builds, a non-root runtime, the model and geodata prepared
# at build time by the pinned fetch scripts, and a HEALTHCHECK by the binary itself.
dockerfile = (root / "deploy" / "docker" / "Dockerfile").read_text()
for needle, why in [("cargo chef cook", "dependency layers cached with cargo-chef"),
                    ("--locked", "builds from Cargo.lock"),
                    ("deploy/local/fetch-model.sh", "the photo model prepared at build time"),
                    ("deploy/local/fetch-geodata.sh", "geodata prepared at build time"),
                    ('HEALTHCHECK', "a HEALTHCHECK")]:
    assert needle in dockerfile, f"Dockerfile: missing {why} ({needle})"
stages = dockerfile.split("\nFROM ")
runtime = stages[-1]
users = re.findall(r"^USER\s+(\S+)", runtime, re.M)
assert users and users[-1].split(":")[0] not in ("0", "root"), "Dockerfile: the runtime stage must run as a non-root USER"
assert re.search(r'^HEALTHCHECK .*CMD \["/usr/local/bin/app", "healthcheck"\]', runtime, re.M), \
    "Dockerfile: HEALTHCHECK must run the binary's own healthcheck"
assert "cargo" not in runtime and "rust:" not in runtime.split("\n")[0], "Dockerfile: toolchain in the runtime image"
for ln in re.findall(r"cargo (?:build|chef cook)[^\n]*", dockerfile):
    assert "--locked" in ln and "--release" in ln, f"Dockerfile: {ln!r} is not a locked release build"
# What a browser or the app is sent to must resolve from the host, never a compose service name.
env_values = dict(re.findall(r"^([A-Z_]+)=(.*)$", env_example, re.M))
for var in ["WECHAT_MP_BASE", "WECHAT_OPEN_BASE", "PUBLIC_BASE_URL"]:
    urls = re.findall(r"\$\{" + var + r":-([^}]*)\}", compose) + [env_values.get(var, "")]
    for url in filter(None, urls):
        host = re.sub(r"^https?://", "", url).split("/")[0].split(":")[0]
        assert host not in services, f"{var}={url}: a browser cannot reach the compose service {host}"
# The users 10-services.sh makes on the primary have the passwords the services' URLs carry:
# every password variable of a URL is passed to the primary, with the same default.
primary_env = services["mysql-primary"]["environment"]
for var, default in set(re.findall(r"mysql://\w+:\$\{(\w+_DB_PASSWORD):-([^}]*)\}@", compose)):
    assert primary_env.get(var) == "${" + var + ":-" + default + "}", \
        f"compose: mysql-primary does not get {var} (default {default}) for 10-services.sh"
# The observability profile has no sign-in: its ports stay on loopback, whatever BIND_HOST says.
for name in [n for n, v in services.items() if "observability" in (v.get("profiles") or [])]:
    for port in services[name].get("ports", []):
        assert str(port).startswith("127.0.0.1:"), f"compose: {name} publishes {port} beyond loopback"
# Services that scale (`docker compose --scale`) publish no fixed host port.
for name in ["gateway", "membership", "photo", "stats"]:
    assert not services[name].get("ports"), f"compose: {name} publishes a host port, so it cannot scale"
# nginx takes every photo upload the gateway takes: its cap covers the largest batch and the form.
import tomllib
gateway_cfg = tomllib.loads((root / "gateway" / "config.default.toml").read_text())
photo_limits = tomllib.loads((root / "proto" / "photo_limits.default.toml").read_text())["photo_limits"]
api_conf = (root / "deploy" / "nginx" / "api.aifuture.net.cn.conf").read_text()
photos = re.search(r"location /api/v1/photos/ \{[^}]*client_max_body_size (\d+)m;", api_conf)
assert photos, "nginx: /api/v1/photos/ sets no client_max_body_size"
needed = photo_limits["classify_batch_max_bytes"] + gateway_cfg["max_body_bytes"]
assert int(photos.group(1)) * 1024 * 1024 >= needed, \
    f"nginx: /api/v1/photos/ caps bodies at {photos.group(1)} MiB, the gateway takes {needed} bytes"
# The registry-free image (deploy/images) runs the same runtime stage: the same instructions
# from FROM on, and COPY to the same places (only where the files come from differs).
def runtime_stage(text):
    stage = text.split("\nFROM ")[-1].split("\n")[1:]
    lines = [ln for ln in stage if ln.strip() and not ln.startswith("#")]
    same = [ln for ln in lines if not ln.startswith("COPY ")]
    copied_to = [ln.split()[-1] for ln in lines if ln.startswith("COPY ")]
    return same, copied_to
registry_free = (root / "deploy" / "images" / "service.Dockerfile").read_text()
assert runtime_stage(registry_free) == runtime_stage(dockerfile), \
    "deploy/images/service.Dockerfile and deploy/docker/Dockerfile's runtime stage differ"
# The registry-free override names only images (and nginx's no-otel files) of existing services.
override = yaml.safe_load((root / "deploy" / "images" / "compose.yml").read_text())["services"]
for name, svc in override.items():
    assert name in services, f"deploy/images/compose.yml overrides unknown service {name}"
    assert svc["image"].startswith("xintu/"), f"deploy/images/compose.yml: {name} is not a registry-free image"
    for volume in svc.get("volumes", []):
        assert (root / volume.split(":")[0]).exists(), f"deploy/images/compose.yml mounts missing {volume}"
# Compose: the observability profile, healthchecks, secrets only from .env.
obs = [n for n, s in services.items() if "observability" in (s.get("profiles") or [])]
assert "otel-collector" in obs and any(n != "otel-collector" for n in obs), \
    "compose: the observability profile needs an OpenTelemetry collector and a trace viewer"
collector = yaml.safe_load((root / "deploy" / "otel-collector.yaml").read_text())
grpc_ep = collector["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
assert grpc_ep.endswith(":4317"), "otel-collector.yaml: OTLP/gRPC receiver not on 4317"
pipelines = collector["service"]["pipelines"]
for signal in ("traces", "metrics"):
    assert signal in pipelines and "otlp" in pipelines[signal]["receivers"], \
        f"otel-collector.yaml: no {signal} pipeline fed by the OTLP receiver"
for pipeline in pipelines.values():
    for exp in pipeline["exporters"]:
        assert exp in collector["exporters"], f"otel-collector.yaml: pipeline uses undefined exporter {exp}"
        target = collector["exporters"][exp].get("endpoint", "")
        # A pull exporter (prometheus) listens on all interfaces; the others push to a service.
        if ":" in target and not target.startswith("0.0.0.0:"):
            assert target.split(":")[0] in services, f"otel-collector.yaml: exporter {exp} targets unknown {target}"
        if target.startswith("0.0.0.0:"):
            port = target.rsplit(":", 1)[1]
            published = [str(p) for p in services["otel-collector"].get("ports", [])]
            assert any(p.endswith(f":{port}:{port}") for p in published), \
                f"otel-collector.yaml: {exp} listens on {port}, which compose does not publish"
# nginx heads the trace: the -otel image, its module loaded, spans to the collector, and the
# trace context propagated to the gateway (tests/it/edge.rs runs `nginx -t` on the rest).
nginx_svc = services["nginx"]
assert str(nginx_svc["image"]).endswith("-otel"), "compose: nginx needs the -otel image for its module"
assert "./deploy/nginx/env/compose:/etc/nginx/env:ro" in nginx_svc["volumes"], "compose: nginx env dir not mounted"
for env_dir in ("compose", "production"):
    nginx_env = root / "deploy" / "nginx" / "env" / env_dir
    assert re.search(r"^load_module modules/ngx_otel_module\.so;", (nginx_env / "modules.conf").read_text(), re.M), \
        f"nginx env/{env_dir}: the OpenTelemetry module is not loaded"
    otel_conf = (nginx_env / "otel.conf").read_text()
    endpoint = re.search(r"endpoint\s+([\w.-]+):(\d+);", otel_conf)
    assert endpoint and endpoint.group(1) in services and endpoint.group(2) == "4317", \
        f"nginx env/{env_dir}: spans must go to the collector's OTLP/gRPC port"
    for directive in ("otel_trace on;", "otel_trace_context propagate;"):
        assert directive in otel_conf, f"nginx env/{env_dir}: {directive} missing"
nginx_conf = (root / "deploy" / "nginx" / "nginx.conf").read_text()
for include in ("include env/modules.conf;", "include env/otel.conf;"):
    assert include in nginx_conf, f"nginx.conf: {include} missing"
assert "http://otel-collector:4317" in env_example, ".env.example must say how to point OTLP at the collector"
for name, svc in services.items():
    env = svc.get("environment") or {}
    if "x-healthcheck-exempt" in svc:
        # Only an image that cannot run a check may skip it, and then nothing may wait on it.
        assert "observability" in (svc.get("profiles") or []), f"{name}: only observability images may skip healthchecks"
        for other, osvc in services.items():
            assert name not in (osvc.get("depends_on") or {}), f"{other} waits on {name}, which has no healthcheck"
    if "DATABASE_URL" in env and svc.get("command") != ["migrate"]:
        deps = svc.get("depends_on") or {}
        assert deps.get(f"{name}-migrate", {}).get("condition") == "service_completed_successfully", \
            f"{name} must wait for its migration step"
    for key, val in env.items():
        if any(w in key for w in ("PASSWORD", "SECRET", "API_KEY", "AES_KEY", "TOKEN")) or key.endswith("DATABASE_URL") \
                or key.endswith("DATABASE_REPLICA_URL"):
            assert "${" in str(val), f"{name}: {key} is written into docker-compose.yml instead of coming from .env"
    if "build" in svc:
        assert str(svc.get("image", "")).startswith("xintu/"), f"{name}: built image has no xintu/ tag"

# Kubernetes manifests (deploy/k8s/*.yaml, multi-document): structure, probes, images and ports as in
# compose, the operator env names (docs/operations.md, "Configuration"), and secrets only through
# secretKeyRef.
SPEC_ENV = ["DATABASE_URL", "DATABASE_REPLICA_URL", "REDIS_URL", "WECHAT_APPID", "WECHAT_SECRET",
            "WECHAT_TOKEN", "WECHAT_AES_KEY", "WECHAT_API_BASE", "WECHATPAY_MCH_ID", "WECHATPAY_API_KEY",
            "WECHATPAY_API_BASE", "WECHATPAY_NOTIFY_URL", "DASHSCOPE_API_KEY", "DASHSCOPE_BASE_URL",
            "OTEL_EXPORTER_OTLP_ENDPOINT", "RUST_LOG"]
SECRET_ENV = {"DATABASE_URL", "DATABASE_REPLICA_URL", "WECHAT_SECRET", "WECHAT_TOKEN", "WECHAT_AES_KEY",
              "WECHATPAY_API_KEY", "DASHSCOPE_API_KEY", "SESSION_SECRET", "ADMIN_PASSWORD_HASH",
              "EDIT_URL_SECRET", "SERVICE_TOKEN"}
k8s = root / "deploy" / "k8s"
objects = []
for path in sorted(k8s.glob("*.yaml")):
    for obj in yaml.safe_load_all(path.read_text()):
        if obj is None:
            continue
        for key in ("apiVersion", "kind", "metadata"):
            assert key in obj, f"{path.name}: object without {key}"
        assert obj["metadata"].get("name"), f"{path.name}: {obj['kind']} without a name"
        objects.append((path.name, obj))
by_kind = {}
for fname, obj in objects:
    by_kind.setdefault(obj["kind"], {})[obj["metadata"]["name"]] = (fname, obj)
    assert obj["kind"] != "Secret", f"{fname}: secret values do not belong in deploy/k8s/ (see example/)"
    assert obj["kind"] != "StatefulSet", f"{fname}: database and Redis are external managed services"
configmaps = {n: o["data"] for n, (_, o) in by_kind.get("ConfigMap", {}).items()}
compose_images = {svc.get("image") for svc in services.values() if svc.get("image")}
compose_ports = {}
for name, svc in services.items():
    for key, val in (svc.get("environment") or {}).items():
        if key.endswith("_LISTEN_ADDR"):
            compose_ports[name] = int(str(val).rsplit(":", 1)[1])
env_seen = set()
deployments = by_kind.get("Deployment", {})
for want in ["gateway", "membership", "photo", "stats", "web"]:
    assert want in deployments, f"k8s: no Deployment {want}"
# The web tier: compose's lighttpd image, with an entry file of its own (web-config) naming the
# gateway's Service and port as its one app server.
WEB_IMAGE = services["lighttpd"]["image"]
web_entry = configmaps["web-config"]["lighttpd.conf"]
web_upstreams = re.findall(r'"host"\s*=>\s*"([^"]+)",\s*"port"\s*=>\s*(\d+)', web_entry)
assert web_upstreams == [("gateway", "80")], f"k8s: web-config's app servers {web_upstreams}"
assert 'include "/etc/lighttpd/xintu/xintu.conf"' in web_entry, "k8s: web-config does not include the sites"
gateway_service_ports = {p["port"]: p["targetPort"] for p in by_kind["Service"]["gateway"][1]["spec"]["ports"]}
assert gateway_service_ports.get(80) == "http", "k8s: the gateway Service's port 80 is not its http port"
def check_env(fname, owner, container):
    for env in container.get("env", []):
        env_seen.add(env["name"])
        src = env.get("valueFrom") or {}
        if env["name"] in SECRET_ENV:
            assert "secretKeyRef" in src, f"{fname}: {owner} takes {env['name']} other than by secretKeyRef"
        if "configMapKeyRef" in src:
            ref = src["configMapKeyRef"]
            assert ref["key"] in configmaps.get(ref["name"], {}), f"{fname}: {owner} reads missing {ref}"
    assert all("secretRef" not in e for e in container.get("envFrom", [])), \
        f"{fname}: {owner} imports a whole Secret; name each key with secretKeyRef"
    assert container["image"] in compose_images, f"{fname}: {owner} image {container['image']} not built by compose"
for name, (fname, dep) in deployments.items():
    spec = dep["spec"]
    labels = spec["template"]["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in spec["selector"]["matchLabels"].items()), f"{fname}: selector"
    for c in spec["template"]["spec"]["containers"]:
        for probe in ("readinessProbe", "livenessProbe"):
            assert probe in c, f"{fname}: container {c['name']} has no {probe}"
            p = c[probe]
            cmd = (p.get("exec") or {}).get("command", [])
            path = (p.get("httpGet") or {}).get("path")
            assert path in ("/healthz", "/readyz") or cmd[1:2] == ["healthcheck"] \
                or (name == "web" and path == "/"), \
                f"{fname}: {c['name']} {probe} is neither /healthz, /readyz nor the binary's healthcheck"
        assert c.get("securityContext", {}).get("runAsNonRoot"), f"{fname}: {c['name']} may run as root"
        check_env(fname, c["name"], c)
        ports = [p["containerPort"] for p in c.get("ports", [])]
        if name == "web":
            assert c["image"] == WEB_IMAGE, f"{fname}: web runs {c['image']}, not compose's {WEB_IMAGE}"
            assert "server.port          = 8080" in web_entry and ports == [8080], f"{fname}: web's port"
            continue
        assert name in compose_ports and compose_ports[name] in ports, \
            f"{fname}: {name} ports {ports} differ from compose's {compose_ports.get(name)}"
        listen = [e["value"] for e in c["env"] if e["name"].endswith("_LISTEN_ADDR")]
        assert listen and int(listen[0].rsplit(":", 1)[1]) in ports, f"{fname}: {name} listens off its port"
        for e in c["env"]:
            if e["name"].endswith("_GRPC_URL"):
                host = e["value"].split("//")[1].split(":")[0]
                svc = by_kind.get("Service", {}).get(host)
                assert svc and svc[1]["spec"].get("clusterIP") == "None", \
                    f"{fname}: {name} calls {host}, not a headless Service (one HTTP/2 connection pins one pod)"
for name in ["membership", "photo", "stats"]:
    assert f"{name}-migrate" in by_kind.get("Job", {}), f"k8s: no migrate Job for {name}"
    _, job = by_kind["Job"][f"{name}-migrate"]
    for c in job["spec"]["template"]["spec"]["containers"]:
        assert c.get("args") == ["migrate"], f"k8s: {name}-migrate does not run migrate"
        check_env("jobs", c["name"], c)
    assert f"{name}-grpc" in by_kind.get("Service", {}), f"k8s: no headless Service for {name}"
for name, (fname, svc) in by_kind.get("Service", {}).items():
    sel = svc["spec"]["selector"]
    assert any(all(d["spec"]["template"]["metadata"]["labels"].get(k) == v for k, v in sel.items())
               for _, d in deployments.values()), f"{fname}: Service {name} selects no Deployment"
for name in SPEC_ENV:
    assert name in env_seen, f"k8s manifests do not pass {name} (docs/operations.md, the operator contract)"

# Ingress: every host on TLS, every backend an existing Service's named port; the API host to the
# gateway with deploy/nginx's body limit for photo uploads, the sites' hosts to the web tier.
ingress_hosts = {}
for name, (fname, ing) in by_kind.get("Ingress", {}).items():
    tls_hosts = {h for t in ing["spec"].get("tls", []) for h in t["hosts"]}
    for rule in ing["spec"]["rules"]:
        assert rule["host"] in tls_hosts, f"{fname}: {rule['host']} without TLS"
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            svc = by_kind["Service"].get(backend["name"])
            assert svc and backend["port"]["name"] in [p["name"] for p in svc[1]["spec"]["ports"]], \
                f"{fname}: {rule['host']} goes to no Service port: {backend}"
            ingress_hosts[rule["host"]] = (name, backend["name"])
assert ingress_hosts.get("api.aifuture.net.cn", (None, None))[1] == "gateway", "k8s: no Ingress for the API host"
for host in ("www.xintuxiangce.top", "admin.xintuxiangce.top", "www.aifuture.net.cn"):
    assert ingress_hosts.get(host, (None, None))[1] == "web", f"k8s: no Ingress of {host} to the web tier"
nginx_api = (root / "deploy" / "nginx" / "api.aifuture.net.cn.conf").read_text()
photos_cap = re.search(r"location /api/v1/photos/ \{[^}]*client_max_body_size (\w+);", nginx_api).group(1)
api_ingress = by_kind["Ingress"][ingress_hosts["api.aifuture.net.cn"][0]][1]
assert api_ingress["metadata"]["annotations"].get("nginx.ingress.kubernetes.io/proxy-body-size") == photos_cap, \
    f"k8s: the API Ingress's body limit differs from deploy/nginx's {photos_cap}"

# The service token: every program of ours gets it, in compose from .env and in Kubernetes from
# the Secret; every key a manifest reads from the Secret is in its template.
for name, svc in services.items():
    if "build" in svc and name != "sandbox" and "lighttpd" not in name:
        assert "${SERVICE_TOKEN" in str((svc.get("environment") or {}).get("SERVICE_TOKEN", "")), \
            f"compose: {name} does not get SERVICE_TOKEN from .env"
secret_template = yaml.safe_load((k8s / "example" / "secret.yaml").read_text())["stringData"]
pod_templates = {n: d["spec"]["template"] for n, (_, d) in deployments.items()}
pod_templates.update({n: j["spec"]["template"] for n, (_, j) in by_kind.get("Job", {}).items()})
for name, template in pod_templates.items():
    for c in template["spec"]["containers"]:
        names = [e["name"] for e in c.get("env", [])]
        # The web tier makes no gRPC call and holds no secret.
        assert ("SERVICE_TOKEN" in names) == (name != "web"), f"k8s: {name} and SERVICE_TOKEN"
        for e in c.get("env", []):
            ref = (e.get("valueFrom") or {}).get("secretKeyRef")
            if ref:
                assert ref["key"] in secret_template, f"k8s: {name} reads {ref['key']}, missing from example/secret.yaml"

# NetworkPolicies: a default deny of both directions, a policy of its own for every pod, and
# allowances that are exactly the calls the programs make (their *_GRPC_URL settings), the
# database port only for holders of a DATABASE_URL, Redis's only for holders of a REDIS_URL.
policies = [o for _, o in by_kind.get("NetworkPolicy", {}).values()]
def types(p):
    return set(p["spec"].get("policyTypes") or [])
def matches(selector, labels):
    assert not (selector or {}).get("matchExpressions"), "check-deploy reads matchLabels only"
    return all(labels.get(k) == v for k, v in (selector or {}).get("matchLabels", {}).items())
def port_ok(ports, port):
    return not ports or any(p.get("port") == port for p in ports)
pods = {n: (t["metadata"]["labels"], {e["name"]: e.get("value") for c in t["spec"]["containers"] for e in c.get("env", [])})
        for n, t in pod_templates.items()}
def selecting(labels, kind):
    return [p for p in policies if kind in types(p) and matches(p["spec"]["podSelector"], labels)]
assert any(p["spec"]["podSelector"] == {} and types(p) >= {"Ingress", "Egress"}
           and not p["spec"].get("ingress") and not p["spec"].get("egress") for p in policies), \
    "k8s: no default-deny NetworkPolicy (empty podSelector, Ingress and Egress, no rules)"
def ingress_sources(labels, port):
    found = set()
    for p in selecting(labels, "Ingress"):
        for rule in p["spec"].get("ingress") or []:
            if not port_ok(rule.get("ports"), port):
                continue
            for peer in rule.get("from") or [None]:
                if peer is None:
                    found.add("anywhere")
                elif "podSelector" in peer and "namespaceSelector" not in peer:
                    found |= {n for n, (l, _) in pods.items() if matches(peer["podSelector"], l)}
                else:
                    found.add("outside")
    return found
def egress_ok(labels, port, target=None):
    for p in selecting(labels, "Egress"):
        for rule in p["spec"].get("egress") or []:
            if not port_ok(rule.get("ports"), port):
                continue
            peers = rule.get("to")
            if not peers or any(matches(peer.get("podSelector"), target) if target is not None and "podSelector" in peer
                                else target is None and "podSelector" not in peer for peer in peers):
                return True
    return False
for name, (labels, _) in pods.items():
    assert any(p["spec"]["podSelector"] for p in selecting(labels, "Ingress")), \
        f"k8s: {name} is selected by no NetworkPolicy of its own"
callers = {}
for name, (_, env) in pods.items():
    for key, value in env.items():
        if key.endswith("_GRPC_URL"):
            host, port = value.split("//")[1].split(":")
            selector = by_kind["Service"][host][1]["spec"]["selector"]
            for target, (labels, _) in pods.items():
                if matches({"matchLabels": selector}, labels):
                    callers.setdefault((target, int(port.strip("/"))), set()).add(name)
# The web tier's app server: the gateway Service's target port.
callers.setdefault(("gateway", 8080), set()).add("web")
# Reached from outside the namespace: the ingress controller's two backends.
FROM_INGRESS = {("gateway", 8080), ("web", 8080)}
for target_port in FROM_INGRESS:
    callers.setdefault(target_port, set()).add("outside")
for (target, port), who in callers.items():
    allowed = ingress_sources(pods[target][0], port)
    assert allowed == who, f"k8s: {target}:{port} is reachable from {sorted(allowed)}, called by {sorted(who)}"
    for caller in who - {"outside"}:
        assert egress_ok(pods[caller][0], port, pods[target][0]), f"k8s: {caller} may not reach {target}:{port}"
for name, (labels, env) in pods.items():
    listen = [int(v.rsplit(":", 1)[1]) for k, v in env.items() if k.endswith("_LISTEN_ADDR")]
    if name in ("gateway", "web"):
        pass  # compared with their callers above
    elif not listen:
        assert not any(ingress_sources(labels, port) for port in (50051, 50052, 50053, 8080)), f"k8s: {name} accepts connections"
    for port, needs in ((3306, "DATABASE_URL" in env), (6379, "REDIS_URL" in env)):
        assert egress_ok(labels, port) == needs, f"k8s: {name} {'may not' if needs else 'may'} reach port {port}"

# Replication: the password comes from the environment; no deploy file holds one.
fixed = re.compile(r"replpass|'repl'@'[^']*'\s+IDENTIFIED BY\s+'(?!\$)|MASTER_PASSWORD\s*=\s*'(?!\$)", re.I)
for path in [root / "docker-compose.yml", *sorted((root / "deploy").rglob("*"))]:
    if path.is_file() and path.suffix in (".sh", ".sql", ".yml", ".yaml", ".cnf", "") and path.name != "check-deploy.sh":
        for line in path.read_text(errors="replace").splitlines():
            assert not fixed.search(line), f"{path.relative_to(root)}: a fixed replication password: {line.strip()}"
script = "./deploy/mysql/init/00-replication.sh"
for name in ("mysql-primary", "mysql-replica"):
    svc = services[name]
    assert f"{script}:/docker-entrypoint-initdb.d/00-replication.sh:ro" in svc["volumes"], f"compose: {name} does not run {script}"
    assert str(svc["environment"].get("MYSQL_REPLICATION_PASSWORD", "")).startswith("${MYSQL_REPLICATION_PASSWORD:?"), \
        f"compose: {name} must require MYSQL_REPLICATION_PASSWORD from .env"
    assert "XINTU_ENV" in svc["environment"], f"compose: {name} must know XINTU_ENV (production refuses a placeholder)"
assert services["mysql-replica"]["environment"].get("MYSQL_REPLICATION_PRIMARY_HOST") in services
import os
assert os.access(root / script, os.X_OK), f"{script} must be executable (the image sources other *.sh)"
print("deploy files: ok")
PY

# The repository explains itself: someone who clones it has none of the planning documents kept
# beside it (the system spec, the reference notes, the seed) nor the issue tracker, so no tracked
# file outside docs/ may cite them; code cites docs/architecture.md, docs/api.md or
# docs/operations.md by section, or says the rule itself.
python3 - "$ROOT" <<'PY'
import pathlib, re, subprocess, sys
root = pathlib.Path(sys.argv[1])
OUTSIDE = re.compile(
    r"SYSTEM[.]md|reliability[.]md|wechat[.]md|geodata[.]md|style[.]md|dashscope-and-local[-]models"
    r"|[.][.]/shared\b|\bshared/(?:spec|reference|seed)\b|\bissues? +#?[0-9]+"
    # A section sign with a number cites a document by its sections ("reliability [§]4").
    r"|\u00a7 ?[0-9]",
    re.IGNORECASE,
)
# Not a citation: the default directory of the seed's own stack, which the comparison benchmark
# runs beside this system ($XINTU_PEER_DIR).
NOT_A_CITATION = re.compile(r"[.][.]/shared/peer-fastapi")
# A released migration is never edited (sqlx refuses a file whose checksum changed), so its
# header keeps what it said.
FROZEN = ("services/photo/migrations/20261201100001_edit_tasks.sql",)
try:
    listed = subprocess.run(["git", "-C", str(root), "ls-files", "-z"], check=True,
                            capture_output=True).stdout.decode().split("\0")
except (OSError, subprocess.CalledProcessError):
    listed = [str(p.relative_to(root)) for p in root.rglob("*")
              if p.is_file() and not {".git", "target"} & set(p.relative_to(root).parts)]
found = []
for name in filter(None, listed):
    if name.startswith("docs/") or name in FROZEN:
        continue
    path = root / name
    if not path.is_file():
        continue
    text = path.read_bytes().decode("utf-8", errors="replace")
    for number, line in enumerate(text.splitlines(), 1):
        if OUTSIDE.search(NOT_A_CITATION.sub("", line)):
            found.append(f"{name}:{number}: {line.strip()[:120]}")
if found:
    print("these cite documents outside the repository; say the rule, or cite docs/:", file=sys.stderr)
    print("\n".join(found), file=sys.stderr)
    sys.exit(1)
print("no citations outside the repository: ok")
PY

# The replication init script itself, with a stand-in `mariadb` that keeps the SQL it is sent:
# no password, a placeholder or short one in production, or a quote: refused, nothing sent.
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
printf '#!/bin/sh\necho "-- $*" >> "%s/sent.sql"; cat >> "%s/sent.sql"\n' "$WORK" "$WORK" > "$WORK/mariadb"
chmod +x "$WORK/mariadb"
repl() { env -i PATH="$WORK:/usr/bin:/bin" "$@" "$ROOT/deploy/mysql/init/00-replication.sh" 2>/dev/null; }
refused() { # with a root password, so only the password's rules can refuse
  if repl MARIADB_ROOT_PASSWORD=root-pw "$@"; then echo "00-replication.sh ran with $*" >&2; exit 1; fi
  if [ -s "$WORK/sent.sql" ]; then echo "00-replication.sh sent SQL with $*" >&2; exit 1; fi
}
refused
refused MYSQL_REPLICATION_PASSWORD=
refused MYSQL_REPLICATION_PASSWORD="it's-quoted-0123456789"
refused XINTU_ENV=production MYSQL_REPLICATION_PASSWORD=local-only-replication-change-me
refused XINTU_ENV=production MYSQL_REPLICATION_PASSWORD=Zq8r2Lm5
# Never the client's default socket, which may be another server's.
refused MYSQL_REPLICATION_PASSWORD=Zq8r2Lm5Tn4Wv7Xy1Kd3 MARIADB_ROOT_PASSWORD=
repl XINTU_ENV=production MYSQL_REPLICATION_PASSWORD=Zq8r2Lm5Tn4Wv7Xy1Kd3 MARIADB_ROOT_PASSWORD=root-pw
grep -qx -- "-- -uroot -proot-pw" "$WORK/sent.sql"
grep -q "CREATE USER IF NOT EXISTS 'repl'@'%' IDENTIFIED BY 'Zq8r2Lm5Tn4Wv7Xy1Kd3'" "$WORK/sent.sql"
rm "$WORK/sent.sql"
repl MYSQL_REPLICATION_PASSWORD=Zq8r2Lm5Tn4Wv7Xy1Kd3 MYSQL_REPLICATION_PRIMARY_HOST=mysql-primary \
  XINTU_MARIADB_SOCKET=/run/replica.sock
grep -qx -- "-- -S /run/replica.sock" "$WORK/sent.sql"
grep -q "MASTER_HOST='mysql-primary'" "$WORK/sent.sql"
grep -q "MASTER_PASSWORD='Zq8r2Lm5Tn4Wv7Xy1Kd3'" "$WORK/sent.sql"
echo "replication init script: ok"

# The services' users script: every password from the environment, checked before anything is sent.
users() { env -i PATH="$WORK:/usr/bin:/bin" MARIADB_ROOT_PASSWORD=root-pw "$@" \
  "$ROOT/deploy/mysql/init/10-services.sh" 2>/dev/null; }
all_set="MEMBERSHIP_DB_PASSWORD=Mb7Qz2Xk9Lp4Rt6Wn MEMBERSHIP_MIGRATE_DB_PASSWORD=Mm3Vh8Jc5Ty1Ue7Ka
  PHOTO_DB_PASSWORD=Pd6Gs2Bn8Fq4Zx9Ly PHOTO_MIGRATE_DB_PASSWORD=Pm1Hw7Nc3Rk5Vt2Qe
  STATS_DB_PASSWORD=Sd4Jy9Mc2Xb6Kq8Wt STATS_MIGRATE_DB_PASSWORD=Sm5Lr1Gv7Pz3Hn9Df"
users_refused() {
  # shellcheck disable=SC2086
  if users $all_set "$@"; then echo "10-services.sh ran with $*" >&2; exit 1; fi
  if [ -s "$WORK/sent.sql" ]; then echo "10-services.sh sent SQL with $*" >&2; exit 1; fi
}
rm -f "$WORK/sent.sql"
users_refused STATS_DB_PASSWORD=
users_refused PHOTO_DB_PASSWORD="it's"
users_refused PHOTO_DB_PASSWORD="p@ss/word"
users_refused XINTU_ENV=production MEMBERSHIP_DB_PASSWORD=membership-local
users_refused XINTU_ENV=production STATS_MIGRATE_DB_PASSWORD=Short8ch
# shellcheck disable=SC2086
users XINTU_ENV=production $all_set
grep -q "CREATE USER IF NOT EXISTS 'membership'@'%' IDENTIFIED BY 'Mb7Qz2Xk9Lp4Rt6Wn'" "$WORK/sent.sql"
grep -q "CREATE USER IF NOT EXISTS 'stats_migrate'@'%' IDENTIFIED BY 'Sm5Lr1Gv7Pz3Hn9Df'" "$WORK/sent.sql"
grep -q "GRANT SELECT, INSERT, UPDATE, DELETE ON xintu_photo.\* TO 'photo'@'%'" "$WORK/sent.sql"
echo "services' users init script: ok"

# The Kubernetes manifests against the API's own schemas (strict: an unknown field is an error).
python3 -m kubernetes_validate --kubernetes-version 1.37.0 --strict --quiet \
  "$ROOT"/deploy/k8s/*.yaml "$ROOT"/deploy/k8s/example/*.yaml
echo "kubernetes manifests against the API schemas (1.37): ok"
