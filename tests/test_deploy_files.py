"""The shipped deployment files parse and agree with the service they deploy."""

from __future__ import annotations

from pathlib import Path

import yaml

from detector.config import PipelineSpec
from detector.loader import validate

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def test_every_deploy_yaml_parses():
    files = sorted(DEPLOY.rglob("*.yaml")) + sorted(DEPLOY.rglob("*.yml"))
    assert files
    for f in files:
        assert list(yaml.safe_load_all(f.read_text())), f


def test_kubernetes_pipeline_config_is_a_valid_pipeline_spec():
    docs = list(yaml.safe_load_all((DEPLOY / "kubernetes" / "outage-detector.yaml").read_text()))
    config_map = next(d for d in docs if d["kind"] == "ConfigMap")
    spec = validate(yaml.safe_load(config_map["data"]["pipeline.yaml"]), PipelineSpec, "ConfigMap pipeline.yaml")
    statefulset = next(d for d in docs if d["kind"] == "StatefulSet")
    container = statefulset["spec"]["template"]["spec"]["containers"][0]
    port = container["ports"][0]["containerPort"]
    assert port == spec.sinks.prometheus.port
    probes = {container["readinessProbe"]["httpGet"]["path"], container["livenessProbe"]["httpGet"]["path"]}
    assert probes == {"/readyz", "/healthz"}
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert str(spec.checkpoint.directory) in mounts  # checkpoints on the persistent volume


def test_local_stack_mounts_files_that_exist():
    compose = yaml.safe_load((DEPLOY / "local" / "compose.yaml").read_text())
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (DEPLOY / "local" / source).resolve().exists(), f"{source} is mounted but not shipped"
