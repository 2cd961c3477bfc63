#!/usr/bin/env python3
"""Rendered Kubernetes manifests, checked against the lcm-worker binary.

    kubernetes_manifests.py split RENDERED.yaml OUTDIR
        One file per object: built-in kinds under OUTDIR/builtin/, each
        custom kind under OUTDIR/<Kind>/, for kubernetes-validate and
        check-jsonschema.

    kubernetes_manifests.py consistency RENDERED.yaml LCM_WORKER
        Runs `LCM_WORKER check --offline` with the pod's environment and
        mounted files (laid out under a temporary folder), so that the
        binary itself says whether every LCM__ variable and config key is a
        real setting, and what the effective configuration is. Then checks
        the manifests against it: probe paths and ports against http.addr,
        terminationGracePeriodSeconds against shutdown.grace_ms, KEDA's
        queue against amqp.request_queue, passwords only from Secret files,
        the security settings against the image's user, and the selectors.

Run by .ci/kubernetes.sh from the repository root; needs Python 3.11
(tomllib) and PyYAML.
"""

import ipaddress
import os
import re
import subprocess
import sys
import tempfile
import tomllib
import urllib.parse
from pathlib import Path

import yaml

# API versions of the built-in kinds these manifests may use;
# kubernetes-validate checks those, check-jsonschema the others.
BUILTIN_API_VERSIONS = {
    "v1",
    "apps/v1",
    "policy/v1",
    "autoscaling/v2",
    "batch/v1",
    "networking.k8s.io/v1",
    "rbac.authorization.k8s.io/v1",
}

CONTAINER = "lcm-worker"
PROBE_PATHS = {"startupProbe": "/healthz", "livenessProbe": "/healthz", "readinessProbe": "/readyz"}
# Seconds of slack in terminationGracePeriodSeconds beyond the drain and the
# AMQP close steps: the process's exit and the kubelet's own timing.
GRACE_MARGIN_S = 2
# scheme://user:password@ (an empty user too): a password where it must not be.
URL_WITH_PASSWORD = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@\"']*:[^/\s@\"']+@")
# What a Secret file holds while the check runs: never a real password.
PLACEHOLDER_PASSWORD = "placeholder-for-check-offline"


def load(path):
    with open(path, encoding="utf-8") as file:
        return [doc for doc in yaml.safe_load_all(file) if doc]


def split(rendered, outdir):
    for doc in load(rendered):
        kind, name = doc["kind"], doc["metadata"]["name"]
        folder = "builtin" if doc["apiVersion"] in BUILTIN_API_VERSIONS else kind
        target = Path(outdir, folder, f"{kind}-{name}.yaml")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")


def close_steps_seconds():
    """The worker's AMQP close steps after the drain: cancel the consumer,
    flush the acks, close channel and connection, each bounded by
    CLOSE_TIMEOUT in src/amqp (read from the source, so a change there
    shows here)."""
    pattern = re.compile(r"const CLOSE_TIMEOUT: Duration = Duration::from_secs\((\d+)\);")
    found = [int(m.group(1)) for p in Path("src/amqp").rglob("*.rs") for m in pattern.finditer(p.read_text())]
    if len(found) != 1:
        sys.exit(f"kubernetes: expected one `const CLOSE_TIMEOUT ... from_secs(N)` in src/amqp, found {found}")
    return 3 * found[0]


def image_uid():
    """The uid of the image's USER line (Dockerfile)."""
    users = re.findall(r"^USER\s+(\d+)", Path("Dockerfile").read_text(), re.MULTILINE)
    if len(users) != 1:
        sys.exit(f"kubernetes: expected one numeric USER line in Dockerfile, found {users}")
    return int(users[0])


def selects(selector, labels):
    match = (selector or {}).get("matchLabels", selector or {})
    return bool(match) and all(labels.get(k) == v for k, v in match.items())


class Pod:
    """The worker's Deployment, pod and container, with helpers."""

    def __init__(self, deployment):
        self.deployment = deployment
        self.namespace = deployment["metadata"].get("namespace")
        self.template = deployment["spec"]["template"]
        self.spec = self.template["spec"]
        self.labels = self.template["metadata"].get("labels", {})
        (self.container,) = [c for c in self.spec["containers"] if c["name"] == CONTAINER]

    def port_number(self, port):
        if isinstance(port, int):
            return port
        for declared in self.container.get("ports", []):
            if declared.get("name") == port:
                return declared["containerPort"]
        return None


class Checker:
    def __init__(self, rendered, binary):
        self.docs = load(rendered)
        self.binary = binary
        self.errors = []
        self.notes = []

    def error(self, text):
        self.errors.append(text)

    def objects(self, kind, namespace=None):
        return [
            d
            for d in self.docs
            if d["kind"] == kind and (namespace is None or d["metadata"].get("namespace") == namespace)
        ]

    def find(self, kind, name, namespace):
        for doc in self.objects(kind, namespace):
            if doc["metadata"]["name"] == name:
                return doc
        return None

    # ---- the pod's environment and files, as the binary would see them

    def environment(self, pod):
        env = {}
        for entry in pod.container.get("env", []):
            name = entry["name"]
            if "value" in entry:
                env[name] = str(entry["value"])
                continue
            source = entry.get("valueFrom", {})
            if "secretKeyRef" in source:
                self.error(f"env {name} comes from a Secret: mount passwords as files (*.password_file)")
            elif "configMapKeyRef" in source:
                ref = source["configMapKeyRef"]
                config_map = self.find("ConfigMap", ref["name"], pod.namespace)
                if config_map is None or ref["key"] not in config_map.get("data", {}):
                    self.error(f"env {name}: ConfigMap {ref['name']} has no key {ref['key']}")
                else:
                    env[name] = config_map["data"][ref["key"]]
            else:
                self.error(f"env {name}: cannot resolve {sorted(source)} without a cluster")
        for entry in pod.container.get("envFrom", []):
            if "secretRef" in entry:
                self.error("envFrom a Secret: mount passwords as files (*.password_file)")
            elif "configMapRef" in entry:
                config_map = self.find("ConfigMap", entry["configMapRef"]["name"], pod.namespace)
                prefix = entry.get("prefix", "")
                env.update({prefix + k: v for k, v in (config_map or {}).get("data", {}).items()})
        for name, value in env.items():
            if URL_WITH_PASSWORD.search(value):
                self.error(f"env {name} holds a URL with a password: mount it from a Secret (*.password_file)")
        for name in env:
            if name.startswith("LCM") and name != "LCM_CONFIG" and not name.startswith("LCM__"):
                self.error(f"env {name} is not read by lcm-worker: settings variables start with LCM__")
        return env

    def lay_out_mounts(self, pod, root):
        """Writes the pod's mounted files under `root`; returns the mount
        paths with what each volume is."""
        volumes = {v["name"]: v for v in pod.spec.get("volumes", [])}
        mounts = {}
        for mount in pod.container.get("volumeMounts", []):
            volume = volumes.get(mount["name"])
            path = mount["mountPath"]
            if volume is None:
                self.error(f"volumeMount {mount['name']} names no volume")
                continue
            if "configMap" in volume:
                config_map = self.find("ConfigMap", volume["configMap"]["name"], pod.namespace)
                if config_map is None:
                    self.error(f"volume {mount['name']}: ConfigMap {volume['configMap']['name']} is not rendered")
                    continue
                files = self.items(volume["configMap"], config_map.get("data", {}))
                for file_name, content in files.items():
                    if URL_WITH_PASSWORD.search(content):
                        self.error(f"ConfigMap file {file_name} holds a URL with a password: use *.password_file")
                mounts[path] = ("configMap", files)
            elif "secret" in volume:
                items = volume["secret"].get("items")
                if not items:
                    self.error(f"volume {mount['name']}: list the Secret's keys with `items`, so they can be checked")
                    continue
                mounts[path] = ("secret", {item["path"]: PLACEHOLDER_PASSWORD for item in items})
            elif "emptyDir" in volume:
                mounts[path] = ("emptyDir", {})
            else:
                self.error(f"volume {mount['name']}: kind {sorted(volume)} is not laid out by this check")
        for path, (_, files) in mounts.items():
            folder = Path(root + path)
            folder.mkdir(parents=True, exist_ok=True)
            for name, content in files.items():
                (folder / name).parent.mkdir(parents=True, exist_ok=True)
                (folder / name).write_text(self.rebase(content, mounts, root), encoding="utf-8")
        return mounts

    @staticmethod
    def items(source, data):
        if "items" not in source:
            return dict(data)
        return {item["path"]: data[item["key"]] for item in source["items"]}

    @staticmethod
    def rebase(text, mounts, root):
        """`text` with the pod's mount paths moved under `root`."""
        if not mounts:
            return text
        # One pass, longest path first, so that nothing is moved twice.
        paths = "|".join(re.escape(p) for p in sorted(mounts, key=len, reverse=True))
        return re.sub(paths, lambda m: root + m.group(0), text)

    def effective_settings(self, pod):
        """The binary's own verdict on the pod's configuration."""
        with tempfile.TemporaryDirectory(prefix="lcm-k8s-") as root:
            mounts = self.lay_out_mounts(pod, root)
            env = {k: self.rebase(v, mounts, root) for k, v in self.environment(pod).items()}
            run = subprocess.run(
                [self.binary, "check", "--offline"], env=env, capture_output=True, text=True, check=False
            )
            if run.returncode != 0:
                self.error(
                    f"`lcm-worker check --offline` refused the pod's configuration (exit {run.returncode}): "
                    + run.stderr.strip()
                )
                return None, mounts, root
            settings = tomllib.loads(run.stdout)
        lcm_names = sorted(name for name in env if name.startswith("LCM"))
        self.notes.append(f"`lcm-worker check --offline` accepts the pod's configuration ({', '.join(lcm_names)})")
        for section in ("amqp", "redis"):
            password_file = settings[section]["password_file"]
            urls = [settings[section]["url"]] + settings[section].get("urls", [])
            if password_file:
                settings[section]["password_file"] = password_file.removeprefix(root)
            elif any("***" in url for url in urls):
                self.error(f"{section}: a password in the URL; mount it from a Secret and set {section}.password_file")
        return settings, mounts, root

    # ---- the checks

    def check(self):
        deployments = [d for d in self.objects("Deployment") if any(
            c["name"] == CONTAINER for c in d["spec"]["template"]["spec"]["containers"])]
        if len(deployments) != 1:
            self.error(f"expected one Deployment with a container `{CONTAINER}`, found {len(deployments)}")
            return
        pod = Pod(deployments[0])
        if not selects(pod.deployment["spec"]["selector"], pod.labels):
            self.error("the Deployment's selector does not match its pod template's labels")
        settings, mounts, _ = self.effective_settings(pod)
        self.check_security(pod)
        if settings is None:
            return
        self.check_passwords(settings, mounts)
        port = self.check_http(pod, settings)
        self.check_grace(pod, settings)
        self.check_services(pod, port)
        self.check_disruption_budget(pod)
        self.check_scaling(pod, settings)

    def check_security(self, pod):
        pod_sc = pod.spec.get("securityContext", {})
        sc = {**pod_sc, **pod.container.get("securityContext", {})}
        uid = image_uid()
        expected = {
            "runAsNonRoot": True,
            "runAsUser": uid,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
        }
        for key, value in expected.items():
            if sc.get(key) != value:
                self.error(f"securityContext.{key} is {sc.get(key)!r}, expected {value!r} (Dockerfile: USER {uid})")
        if "ALL" not in sc.get("capabilities", {}).get("drop", []):
            self.error("securityContext.capabilities.drop must hold ALL")
        if sc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            self.error("securityContext.seccompProfile.type must be RuntimeDefault")

    def check_passwords(self, settings, mounts):
        for section in ("amqp", "redis"):
            path = settings[section]["password_file"]
            if not path:
                continue
            holders = [m for m, (kind, _) in mounts.items() if path.startswith(m.rstrip("/") + "/")]
            if not holders or mounts[holders[0]][0] != "secret":
                self.error(f"{section}.password_file {path} is not in a Secret volume")

    def check_http(self, pod, settings):
        addr = settings["http"]["addr"]
        host, _, port_text = addr.rpartition(":")
        port = int(port_text)
        host = host.strip("[]")
        if host == "localhost" or ipaddress.ip_address(host).is_loopback:
            self.error(f"http.addr {addr} is loopback: the kubelet's probes cannot reach it")
        for probe, path in PROBE_PATHS.items():
            spec = pod.container.get(probe)
            if spec is None:
                self.error(f"no {probe}")
                continue
            get = spec.get("httpGet", {})
            if get.get("path") != path:
                self.error(f"{probe} asks {get.get('path')!r}, expected {path}")
            if get.get("scheme", "HTTP") != "HTTP":
                self.error(f"{probe} uses {get['scheme']}; the worker serves plain HTTP")
            asked = pod.port_number(get.get("port"))
            if asked != port:
                self.error(f"{probe} asks port {get.get('port')!r} ({asked}), but http.addr is {addr}")
        if readiness := pod.container.get("readinessProbe"):
            # /readyz waits up to 500 ms for Redis's PING (src/http.rs).
            if readiness.get("timeoutSeconds", 1) < 1:
                self.error("readinessProbe.timeoutSeconds must leave /readyz its 500 ms Redis PING")
        return port

    def check_grace(self, pod, settings):
        grace_s = settings["shutdown"]["grace_ms"] / 1000
        close_s = close_steps_seconds()
        pre_stop_s = self.pre_stop_seconds(pod)
        needed = pre_stop_s + grace_s + close_s + GRACE_MARGIN_S
        given = pod.spec.get("terminationGracePeriodSeconds", 30)
        if given < needed:
            self.error(
                f"terminationGracePeriodSeconds {given} < preStop {pre_stop_s} s + shutdown.grace_ms "
                f"{grace_s:g} s + AMQP close steps {close_s} s + margin {GRACE_MARGIN_S} s = {needed:g} s"
            )
        self.notes.append(
            f"grace: preStop {pre_stop_s} s + drain {grace_s:g} s + close {close_s} s + margin "
            f"{GRACE_MARGIN_S} s = {needed:g} s <= terminationGracePeriodSeconds {given}"
        )

    def pre_stop_seconds(self, pod):
        pre_stop = pod.container.get("lifecycle", {}).get("preStop")
        if not pre_stop:
            return 0
        if "sleep" in pre_stop:
            return pre_stop["sleep"]["seconds"]
        command = " ".join(pre_stop.get("exec", {}).get("command", []))
        if match := re.fullmatch(r"(?:/bin/sh -c )?(?:/bin/)?sleep (\d+)", command):
            return int(match.group(1))
        self.error(f"preStop {pre_stop}: cannot tell how long it takes; use a sleep")
        return 0

    def check_services(self, pod, port):
        services = [s for s in self.objects("Service", pod.namespace) if selects(s["spec"].get("selector"), pod.labels)]
        if not services:
            self.error("no Service selects the worker's pods (metrics discovery)")
        for service in services:
            for service_port in service["spec"]["ports"]:
                target = service_port.get("targetPort", service_port["port"])
                if pod.port_number(target) != port:
                    self.error(
                        f"Service {service['metadata']['name']} targets {target!r} "
                        f"({pod.port_number(target)}), not http.addr's port {port}"
                    )
        for monitor in self.objects("ServiceMonitor"):
            name = monitor["metadata"]["name"]
            if monitor["metadata"].get("namespace") != pod.namespace:
                self.error(f"ServiceMonitor {name} is not in the worker's namespace {pod.namespace}")
            chosen = [s for s in services if selects(monitor["spec"]["selector"], s["metadata"].get("labels", {}))]
            if not chosen:
                self.error(f"ServiceMonitor {name} selects no Service of the worker")
            port_names = {p.get("name") for s in chosen for p in s["spec"]["ports"]}
            for endpoint in monitor["spec"]["endpoints"]:
                if endpoint.get("port") not in port_names:
                    self.error(f"ServiceMonitor {name} scrapes port {endpoint.get('port')!r}, not one of {port_names}")
                if endpoint.get("path", "/metrics") != "/metrics":
                    self.error(f"ServiceMonitor {name} scrapes {endpoint['path']}, not /metrics")

    def check_disruption_budget(self, pod):
        budgets = [b for b in self.objects("PodDisruptionBudget", pod.namespace) if selects(b["spec"]["selector"], pod.labels)]
        if len(budgets) != 1:
            self.error(f"expected one PodDisruptionBudget selecting the worker's pods, found {len(budgets)}")

    def check_scaling(self, pod, settings):
        name = pod.deployment["metadata"]["name"]
        scaled = self.objects("ScaledObject", pod.namespace)
        if len(scaled) != 1:
            self.error(f"expected one ScaledObject, found {len(scaled)}")
            return
        spec = scaled[0]["spec"]
        target = spec["scaleTargetRef"]
        if target.get("kind", "Deployment") != "Deployment" or target["name"] != name:
            self.error(f"the ScaledObject scales {target}, not Deployment {name}")
        if "replicas" in pod.deployment["spec"]:
            self.error("the Deployment sets replicas, which every apply would reset under the autoscaler")
        if spec.get("minReplicaCount", 0) < 1:
            self.error("minReplicaCount must be at least 1: at zero, a request waits for a pod and times out")
        if "fallback" not in spec:
            self.error("the ScaledObject has no fallback")
        behavior = spec.get("advanced", {}).get("horizontalPodAutoscalerConfig", {}).get("behavior", {})
        for direction in ("scaleUp", "scaleDown"):
            if direction not in behavior:
                self.error(f"the HPA behavior does not set {direction}")
        queue = settings["amqp"]["request_queue"]
        urls = settings["amqp"]["urls"] or [settings["amqp"]["url"]]
        vhosts = {urllib.parse.unquote(urllib.parse.urlsplit(u).path[1:]) or "/" for u in urls}
        prefetch = settings["amqp"]["prefetch"]
        for trigger in spec["triggers"]:
            meta = trigger.get("metadata", {})
            kind = trigger["type"]
            if kind == "rabbitmq":
                self.check_rabbitmq_trigger(meta, trigger, queue, vhosts, pod)
                value = float(meta.get("value", 0))
            elif kind == "prometheus":
                query = meta.get("query", "")
                if not re.search(r"rabbitmq_detailed_queue_messages\{[^}]*queue=\"" + re.escape(queue) + '"', query):
                    self.error(f"the prometheus trigger's query does not read rabbitmq_detailed_queue_messages of queue {queue}")
                if meta.get("ignoreNullValues") != "false":
                    self.error("the prometheus trigger must set ignoreNullValues \"false\", so that no data means fallback, not 0")
                value = float(meta.get("threshold", 0))
            else:
                self.error(f"trigger type {kind} is not checked here")
                continue
            if trigger.get("metricType", "AverageValue") != "AverageValue":
                self.error("the trigger's metricType must be AverageValue (messages per replica)")
            if not 0 < value <= prefetch:
                self.error(f"the trigger's target {value:g} per replica must be in (0, amqp.prefetch = {prefetch}]")
        self.notes.append(f"queue {queue}, vhost {sorted(vhosts)}, http.addr {settings['http']['addr']}")

    def check_rabbitmq_trigger(self, meta, trigger, queue, vhosts, pod):
        if meta.get("protocol") != "http" and not meta.get("host", "").startswith("http"):
            self.error("the rabbitmq trigger must use the management API (protocol http): over AMQP it counts only ready messages")
        if meta.get("mode") != "QueueLength":
            self.error("the rabbitmq trigger's mode must be QueueLength")
        if meta.get("excludeUnacknowledged", "false") != "false":
            self.error("the rabbitmq trigger excludes unacknowledged messages: replicas holding work would be scaled away")
        if meta.get("useRegex", "false") != "false":
            self.error("the rabbitmq trigger must name the one request queue, without useRegex")
        if meta.get("queueName") != queue:
            self.error(f"the rabbitmq trigger watches queue {meta.get('queueName')!r}, the worker consumes {queue!r}")
        vhost = meta.get("vhostName")
        if vhost is None or {vhost} != vhosts:
            self.error(f"the rabbitmq trigger's vhostName {vhost!r} is not the worker's vhost {sorted(vhosts)}")
        ref = trigger.get("authenticationRef", {}).get("name")
        auth = ref and self.find("TriggerAuthentication", ref, pod.namespace)
        if not auth:
            self.error(f"the rabbitmq trigger's authenticationRef {ref!r} names no rendered TriggerAuthentication")
        elif not auth["spec"].get("secretTargetRef"):
            self.error(f"TriggerAuthentication {ref} takes no secretTargetRef")


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "split":
        split(sys.argv[2], sys.argv[3])
        return
    if len(sys.argv) != 4 or sys.argv[1] != "consistency":
        sys.exit(__doc__)
    checker = Checker(sys.argv[2], os.path.abspath(sys.argv[3]))
    checker.check()
    label = f"kubernetes: {Path(sys.argv[2]).stem}"
    if checker.errors:
        for error in checker.errors:
            print(f"{label}: {error}", file=sys.stderr)
        sys.exit(f"{label}: {len(checker.errors)} inconsistencies with lcm-worker")
    for note in checker.notes:
        print(f"{label}: {note}")


if __name__ == "__main__":
    main()
