#!/usr/bin/env python3
"""Runs deploy/k8s/base's workloads, as rendered by kustomize, in Docker: the same image,
args, environment (ConfigMap, Secret, downward API), users, read-only roots, volumes, init
containers, shared pod network, probes and termination grace as the manifests say.

    scripts/k8s-in-docker.py [--image vane:0.1.0]

Without a cluster (none can be fetched here), this checks what schema validation cannot: that
the binaries accept the manifests' arguments and wiring. Redis and MLflow, which the base runs
as images, are the host's `redis-server` and `mlflow` on the Docker bridge, reachable under
their Service names (`redis`, `mlflow`) through --add-host. The order is an operator's first
day:

  1. the data volume gets a synthetic offline store (`vane features datagen`);
  2. the materialize CronJob's Indexed Job: every completion index, `--shard I/N` from the
     completion-index annotation, into Redis;
  3. the training Job: MLflow gets a `candidate`; the operator makes it `champion`;
  4. the Deployment's pod: the init container fetches ONNX Runtime, then the server and the
     monitor sidecar start; startup, readiness and liveness probes answer;
  5. entity-keyed traffic through the pod (features from Redis, the model from MLflow): no
     error; the sidecar scores the sampled rows against the profile;
  6. the pipeline file rendered for Argo (`vane pipeline render --argo`, the cluster's
     settings), its steps executed with Argo's semantics (step order, `{{…}}` parameters,
     `continueOn: failed`, `when` on exit codes, the Secret, the data volume) against the
     pod, reached by its Service name: the verdict's promotion or rollback reaches the server;
  7. termination: preStop's sleep, then SIGTERM; the server drains and exits 0 within the
     grace period.
"""

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN = f"k8s-{os.getpid()}"


def log(msg):
    print(f"\n== {msg}", flush=True)


def sh(*args, check=True, capture=False, timeout=None):
    r = subprocess.run(args, check=False, text=True, timeout=timeout,
                       stdout=subprocess.PIPE if capture else None)
    if check and r.returncode != 0:
        sys.exit(f"k8s-in-docker: FAILED: {' '.join(args[:6])}… exit {r.returncode}")
    return r


def render():
    out = sh("kubectl", "kustomize", os.path.join(ROOT, "deploy/k8s/base"), capture=True).stdout
    docs = [d for d in yaml.safe_load_all(out) if d]
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def expand(value, env):
    """Kubernetes' $(VAR) expansion in args."""
    return re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), value)


class Cluster:
    def __init__(self, objs, image, gateway, token):
        self.objs, self.image, self.gateway, self.token = objs, image, gateway, token
        self.config = objs[("ConfigMap", "vane-config")]["data"]
        self.volumes = set()
        self.containers = []

    def hosts(self):
        """The Services' names, resolved to the bridge's gateway where they listen."""
        return [a for svc in ("redis", "mlflow", "vane") for a in ("--add-host", f"{svc}:{self.gateway}")]

    def volume(self, name):
        vol = f"{RUN}-{name}"
        self.volumes.add(vol)
        return vol

    def env(self, container, annotations):
        env = {}
        for src in container.get("envFrom", []):
            ref = src.get("configMapRef", {}).get("name")
            if ref != "vane-config":
                sys.exit(f"unknown envFrom {src}")
            env.update(self.config)
        for e in container.get("env", []):
            if "value" in e:
                env[e["name"]] = expand(e["value"], env)
            elif "secretKeyRef" in e.get("valueFrom", {}):
                ref = e["valueFrom"]["secretKeyRef"]
                if (ref["name"], ref["key"]) != ("vane-admin", "token"):
                    sys.exit(f"unknown secret {ref}")
                env[e["name"]] = self.token
            elif "fieldRef" in e.get("valueFrom", {}):
                path = e["valueFrom"]["fieldRef"]["fieldPath"]
                m = re.fullmatch(r"metadata\.annotations\['(.+)'\]", path)
                if not m or m.group(1) not in annotations:
                    sys.exit(f"unsupported fieldRef {path}")
                env[e["name"]] = annotations[m.group(1)]
            else:
                sys.exit(f"unsupported env {e}")
        return env

    def docker_args(self, pod, container, annotations, network=None):
        spec = pod["spec"]
        env = self.env(container, annotations)
        # A container in another's network namespace shares its /etc/hosts (like a pod).
        args = [] if network else self.hosts()
        user = (container.get("securityContext", {}).get("runAsUser")
                or spec.get("securityContext", {}).get("runAsUser"))
        if user is not None:
            args += ["--user", str(user)]
        if container.get("securityContext", {}).get("readOnlyRootFilesystem"):
            args.append("--read-only")
        vols = {v["name"]: v for v in spec.get("volumes", [])}
        for m in container.get("volumeMounts", []):
            v = vols[m["name"]]
            if "persistentVolumeClaim" in v:
                name = self.volume("pvc-" + v["persistentVolumeClaim"]["claimName"])
            elif "emptyDir" in v:
                name = self.volume(f"{pod['metadata'].get('name', 'pod')}-{m['name']}")
            else:
                sys.exit(f"unsupported volume {v}")
            args += ["-v", f"{name}:{m['mountPath']}"]
        for k, v in env.items():
            args += ["-e", f"{k}={v}"]
        if network:
            args += ["--network", network]
        if container.get("command"):
            args += ["--entrypoint", container["command"][0]]
            rest = container["command"][1:] + container.get("args", [])
        else:
            rest = container.get("args", [])
        if container["image"] != "vane:0.1.0":
            sys.exit(f"unexpected image {container['image']}")
        return args + [self.image] + [expand(a, env) for a in rest]

    def run_job(self, template, annotations, what, pod_name):
        pod = {"metadata": {"name": pod_name}, "spec": template["spec"]}
        for c in template["spec"]["containers"]:
            t0 = time.time()
            r = sh("docker", "run", "--rm", *self.docker_args(pod, c, annotations), check=False)
            if r.returncode != 0:
                sys.exit(f"k8s-in-docker: FAILED: {what} exited {r.returncode}")
            print(f"{what}: exit 0 ({time.time() - t0:.1f} s)", flush=True)

    def cleanup(self):
        for c in self.containers:
            subprocess.run(["docker", "rm", "-f", c], capture_output=True)
        for v in self.volumes:
            subprocess.run(["docker", "volume", "rm", v], capture_output=True)


def free_port(host):
    s = socket.socket()
    try:
        s.bind((host, 0))
        return s.getsockname()[1]
    finally:
        s.close()


def get(url, timeout=2):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read().decode()


def wait_http(url, seconds):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            if get(url)[0] == 200:
                return True
        except Exception:
            pass
        time.sleep(0.5)
    return False


def start_services(objs, gateway, tmp):
    """The host's Redis and MLflow on the Docker bridge, at the ports the ConfigMap names;
    MLflow with the environment its Deployment sets."""
    mlflow_env = {e["name"]: e["value"]
                  for e in objs[("Deployment", "mlflow")]["spec"]["template"]["spec"]
                  ["containers"][0].get("env", [])}
    procs = []
    for port in (6379, 5000):
        with socket.socket() as s:
            if s.connect_ex((gateway, port)) == 0:
                sys.exit(f"k8s-in-docker: {gateway}:{port} is taken")
    procs.append(subprocess.Popen(
        ["redis-server", "--bind", gateway, "--port", "6379", "--save", "", "--appendonly", "no",
         "--protected-mode", "no"],
        stdout=open(os.path.join(tmp, "redis.log"), "w"), stderr=subprocess.STDOUT,
        start_new_session=True))
    procs.append(subprocess.Popen(
        ["mlflow", "server", "--backend-store-uri", f"sqlite:///{tmp}/mlflow.db",
         "--artifacts-destination", f"{tmp}/art", "--serve-artifacts", "--host", gateway,
         "--port", "5000", "--workers", "1"],
        env={**os.environ, **mlflow_env, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        stdout=open(os.path.join(tmp, "mlflow.log"), "w"), stderr=subprocess.STDOUT,
        start_new_session=True))
    if not wait_http(f"http://{gateway}:5000/health", 120):
        sys.exit("k8s-in-docker: MLflow did not start (see mlflow.log)")
    return procs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--image", default="vane:0.1.0")
    opts = ap.parse_args()
    for tool in ("docker", "kubectl", "redis-server", "mlflow"):
        if not shutil.which(tool):
            sys.exit(f"k8s-in-docker: {tool} not found")
    gateway = sh("sh", "-c", "ip -4 -o addr show docker0 | awk '{print $4}' | cut -d/ -f1",
                 capture=True).stdout.strip()
    objs = render()
    cluster = Cluster(objs, opts.image, gateway, secrets.token_hex(16))
    tmp = tempfile.mkdtemp()
    procs = start_services(objs, gateway, tmp)
    try:
        run(cluster, objs)
    finally:
        cluster.cleanup()
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        shutil.rmtree(tmp, ignore_errors=True)
    log("the manifests' workloads ran in Docker: passed")


def run(cluster, objs):
    cron = objs[("CronJob", "vane-materialize")]["spec"]["jobTemplate"]["spec"]
    train = objs[("Job", "vane-train")]["spec"]
    deploy = objs[("Deployment", "vane")]["spec"]["template"]
    data = cluster.volume("pvc-vane-data")

    log("1. the data volume: a synthetic offline store")
    sh("docker", "volume", "create", data, capture=True)
    sh("docker", "run", "--rm", "-u", "0", "-v", f"{data}:/data", "--entrypoint", "sh",
       cluster.image, "-c",
       "vane features datagen --out /data/repo --applicants 5000 --applications 20000 >&2 "
       "&& mkdir -p /data/offline && cp /data/repo/applications.parquet /data/offline/ "
       "&& vane features join --repo /data/repo/features.toml "
       "--data /data/offline/applications.parquet --out /data/offline/joined.parquet >&2 "
       "&& chown -R 10001:10001 /data")

    completions = cron.get("completions", 1)
    log(f"2. materialize: the CronJob's Indexed Job, {completions} completions")
    for i in range(completions):
        cluster.run_job(cron["template"],
                        {"batch.kubernetes.io/job-completion-index": str(i)},
                        f"materialize index {i}", f"materialize-{i}")

    log("3. training: the Job, then `candidate` made `champion` by the operator")
    cluster.run_job(train["template"], {}, "train", "train")
    registry = ["docker", "run", "--rm", "--add-host", f"redis:{cluster.gateway}", "--add-host",
                f"mlflow:{cluster.gateway}", "-e", f"VANE_REGISTRY={cluster.config['VANE_REGISTRY']}",
                cluster.image, "registry"]
    sh(*registry, "alias", "set", "credit-risk", "champion", "1")
    sh(*registry, "list")

    log("4. the pod: init container, server, monitor sidecar, probes")
    pod = {"metadata": {"name": "vane-0"}, "spec": deploy["spec"]}
    for c in deploy["spec"].get("initContainers", []):
        cluster.run_job({"spec": {**deploy["spec"], "containers": [c]}}, {}, f"init {c['name']}",
                        "vane-0")
    containers = deploy["spec"]["containers"]
    ports = [(p["name"], p["containerPort"]) for c in containers for p in c.get("ports", [])]
    first = f"{RUN}-{containers[0]['name']}"
    publish = [a for _, port in ports for a in ("-p", f"127.0.0.1::{port}")]
    named = dict(ports)
    for sp in objs[("Service", "vane")]["spec"]["ports"]:
        target = sp["targetPort"]
        publish += ["-p", f"{cluster.gateway}:{sp['port']}:{named.get(target, target)}"]
    for i, c in enumerate(containers):
        name = f"{RUN}-{c['name']}"
        net = None if i == 0 else f"container:{first}"
        extra = publish if i == 0 else []
        sh("docker", "run", "-d", "--name", name, *extra,
           *cluster.docker_args(pod, c, {}, network=net), capture=True)
        cluster.containers.append(name)
    host_port = {}
    for pname, port in ports:
        out = sh("docker", "port", first, f"{port}/tcp", capture=True).stdout.split("\n")[0]
        host_port[pname] = out.rsplit(":", 1)[1]
    for c in containers:
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            p = c.get(probe)
            if not p:
                continue
            get_ = p["httpGet"]
            url = f"http://127.0.0.1:{host_port[get_['port']]}{get_['path']}"
            budget = p.get("periodSeconds", 10) * p.get("failureThreshold", 3)
            if probe == "readinessProbe":
                budget = 120  # readiness may take until the models are loaded
            if not wait_http(url, budget):
                for n in cluster.containers:
                    subprocess.run(["docker", "logs", "--tail", "20", n])
                sys.exit(f"k8s-in-docker: FAILED: {c['name']} {probe} {get_['path']}")
            print(f"{c['name']}: {probe} {get_['path']} 200", flush=True)

    log("5. entity-keyed traffic through the pod (Redis features, MLflow model)")
    server = f"http://127.0.0.1:{host_port['http']}"
    status, meta = get(f"{server}/v2/models/credit-risk")
    print("served:", json.loads(meta)["parameters"]["backend"], json.loads(meta)["versions"])
    r = sh("docker", "run", "--rm", "--network", f"container:{first}", "-v", f"{data}:/data:ro",
           "--entrypoint", "sh", cluster.image, "-c",
           "vane loadtest --target http://127.0.0.1:8080 --model credit-risk "
           "--data /data/offline/applications.parquet --format features --entity-key applicant_id "
           "--rate 300 --duration 4s --progress off --json /home/vane/load.json >&2 "
           "&& cat /home/vane/load.json", capture=True)
    load = json.loads(r.stdout)
    print(f"loadtest: {load['ok']} ok of {load['requests']}, errors {load['errors']}")
    if not load["ok"] or load["errors"]:
        sys.exit("k8s-in-docker: FAILED: entity-keyed requests failed")
    time.sleep(2)
    _, metrics = get(f"http://127.0.0.1:{host_port['monitor']}/metrics")
    accepted = sum(float(l.rsplit(" ", 1)[1]) for l in metrics.splitlines()
                   if l.startswith("vane_monitor_rows_total") and 'outcome="accepted"' in l)
    print(f"monitor sidecar: {accepted:.0f} rows scored against the reference profile")
    if accepted <= 0:
        sys.exit("k8s-in-docker: FAILED: the sidecar scored no row")

    log("6. the pipeline, rendered for Argo, executed with Argo's semantics")
    outcome = run_workflow(cluster, data)
    expected = "2" if outcome == "promote" else "1"
    deadline = time.time() + 30
    while True:
        routing = json.loads(get(f"{server}/v2/models/credit-risk")[1])["parameters"]["routing"]
        if routing["champion"] == expected and routing["canary"] is None and routing["shadow"] is None:
            break
        if time.time() > deadline:
            sys.exit(f"k8s-in-docker: FAILED: after {outcome} the server routes {routing}")
        time.sleep(0.5)
    print(f"server after {outcome}: champion v{routing['champion']} alone")

    log("7. termination: preStop, SIGTERM, drain within the grace period")
    grace = deploy["spec"].get("terminationGracePeriodSeconds", 30)
    server_c = containers[0]
    pre = server_c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    time.sleep(pre)
    t0 = time.time()
    sh("docker", "stop", "-t", str(max(grace - pre, 1)), first, capture=True)
    took = time.time() - t0
    code = sh("docker", "inspect", "-f", "{{.State.ExitCode}}", first, capture=True).stdout.strip()
    print(f"server: preStop {pre} s, then stopped in {took:.1f} s of {grace - pre} s left, exit {code}")
    if code != "0":
        sys.exit(f"k8s-in-docker: FAILED: server exit code {code}")


def run_workflow(cluster, data):
    """Renders pipelines/credit-risk.toml for Argo with the cluster's settings and executes
    the Workflow: each step group in order; a step runs only when its `when` holds; a failed
    step ends the workflow unless it has `continueOn: failed`. Returns which of promote and
    rollback ran."""
    render = sh("docker", "run", "--rm", "-v", f"{ROOT}/pipelines:/p:ro", cluster.image,
                "pipeline", "render", "--argo", "/p/credit-risk.toml", "--image", "vane:0.1.0",
                "--volume-claim", "vane-data", "--mount", "/data", "--set", "work=/data",
                "--set", "repo=/data/repo/features.toml",
                "--set", "applications=/data/offline/applications.parquet",
                "--set", "verdict_rows=/data/offline/joined.parquet",
                "--set", "store=redis://redis:6379", "--set", "registry=mlflow://mlflow:5000",
                "--set", "server=http://vane:8080", "--set", "verdict_duration=6s",
                capture=True).stdout
    wf = yaml.safe_load(render)["spec"]
    params = {p["name"]: p["value"] for p in wf["arguments"]["parameters"]}
    templates = {t["name"]: t for t in wf["templates"]}
    claim = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in wf["volumes"]}
    exit_codes, ran = {}, []

    def subst(text, inputs):
        text = re.sub(r"\{\{workflow\.parameters\.(\w+)\}\}", lambda m: params[m.group(1)], text)
        text = re.sub(r"\{\{inputs\.parameters\.(\w+)\}\}", lambda m: inputs[m.group(1)], text)
        return re.sub(r"\{\{steps\.([\w-]+)\.exitCode\}\}",
                      lambda m: str(exit_codes[m.group(1)]), text)

    def holds(expr):
        expr = subst(expr, {})
        if not re.fullmatch(r"[0-9\s=!&|]+", expr):
            sys.exit(f"k8s-in-docker: unsupported when: {expr}")
        return bool(eval(expr.replace("&&", " and ").replace("||", " or ")))  # digits and operators only

    for group in templates[wf["entrypoint"]]["steps"]:
        for step in group:
            if "when" in step and not holds(step["when"]):
                print(f"{step['name']}: skipped (when {subst(step['when'], {})})")
                continue
            t = templates[step["template"]]
            c = t["container"]
            inputs = {p["name"]: subst(p["value"], {})
                      for p in step.get("arguments", {}).get("parameters", [])}
            args = cluster.hosts()
            for m in c.get("volumeMounts", []):
                args += ["-v", f"{cluster.volume('pvc-' + claim[m['name']])}:{m['mountPath']}"]
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref and (ref["name"], ref["key"]) == ("vane-admin", "token"):
                    args += ["-e", f"{e['name']}={cluster.token}"]
            argv = [subst(a, inputs) for a in c["command"][1:] + c.get("args", [])]
            t0 = time.time()
            code = sh("docker", "run", "--rm", *args, "--entrypoint", c["command"][0],
                      c["image"], *argv, check=False).returncode
            exit_codes[step["name"]] = code
            print(f"{step['name']}: exit {code} ({time.time() - t0:.1f} s)", flush=True)
            if code != 0 and not step.get("continueOn", {}).get("failed"):
                sys.exit(f"k8s-in-docker: FAILED: the workflow stopped at {step['name']}")
            ran.append(step["name"])
    done = [s for s in ("promote", "rollback") if s in ran]
    if len(done) != 1:
        sys.exit(f"k8s-in-docker: FAILED: promote/rollback ran {done}")
    return done[0]


if __name__ == "__main__":
    main()
