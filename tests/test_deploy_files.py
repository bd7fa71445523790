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


def _kubernetes():
    docs = list(yaml.safe_load_all((DEPLOY / "kubernetes" / "outage-detector.yaml").read_text()))
    return next(d for d in docs if d["kind"] == "ConfigMap"), next(d for d in docs if d["kind"] == "StatefulSet")


def test_the_memory_limit_fits_what_the_configmap_lets_a_replica_hold():
    # docs/metrics.md: about 10 kB of RSS per metric series held (model, calibrator, drift and alert
    # state); a replica may hold every partition of the metrics topic (KEDA's maxReplicaCount = the
    # partition count, its minReplicaCount 1). The log model and the process take the rest, so the
    # metric series may take at most half of the limit.
    from detector.specs import MetricModelSpec
    from detector.loader import validate

    config_map, statefulset = _kubernetes()
    spec = validate(yaml.safe_load(config_map["data"]["pipeline.yaml"]), PipelineSpec, "ConfigMap pipeline.yaml")
    mount = next(m["mountPath"] for m in statefulset["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
                 if m["name"] == "pipeline")
    assert spec.models.metric.parent.as_posix() == mount  # the metric spec is the ConfigMap's own
    metric = validate(yaml.safe_load(config_map["data"][spec.models.metric.name]), MetricModelSpec, "metric.yaml")
    assert spec.incidents.drift_max_series <= metric.max_series
    keda = yaml.safe_load((DEPLOY / "kubernetes" / "keda-scaledobject.yaml").read_text())
    partitions = keda["spec"]["maxReplicaCount"]
    limit = statefulset["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"]
    assert limit.endswith("Gi")
    assert partitions * metric.max_series * 10_000 <= int(limit[:-2]) * 2**30 / 2


def test_the_pod_is_scraped_by_the_job_the_rules_match_not_by_annotations():
    # A generic annotation-driven job labels its targets job="kubernetes-pods": the rules on
    # up{job="outage-detector"} and the dashboard would see no detector at all.
    _, statefulset = _kubernetes()
    annotations = statefulset["spec"]["template"]["metadata"].get("annotations", {})
    assert not [a for a in annotations if a.startswith("prometheus.io/")]
    jobs = {j["job_name"] for j in yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())["scrape_configs"]}
    rules = (DEPLOY / "prometheus" / "rules.yml").read_text()
    assert jobs == {"outage-detector"} and rules.count('job="outage-detector"') >= 2


def test_the_image_sets_no_pipeline_key_in_its_environment():
    # Environment values win over any pipeline file: a key set by the image would be a dead setting in
    # every mounted pipeline (the ConfigMap's checkpoint.directory, sinks.prometheus.host).
    import re

    from detector.config import ENV_NOT_SPEC, load_pipeline

    dockerfile = (DEPLOY / "Dockerfile").read_text()
    env = set(re.findall(r"\b(OUTAGE_DETECTOR_\w+)=", dockerfile))
    assert env == {"OUTAGE_DETECTOR_PIPELINE"} <= ENV_NOT_SPEC
    default = re.search(r"OUTAGE_DETECTOR_PIPELINE=/app/(\S+)", dockerfile).group(1)
    spec = load_pipeline(DEPLOY.parent / default)
    assert spec.sinks.prometheus.host == "0.0.0.0" and str(spec.checkpoint.directory) == "/var/lib/outage-detector"


def test_replicas_scale_with_the_hpa_damped_and_start_in_parallel():
    # With minReplicaCount >= 1, KEDA's cooldownPeriod only applies to scaling to 0: the damping must be
    # the HPA's behavior.
    keda = yaml.safe_load((DEPLOY / "kubernetes" / "keda-scaledobject.yaml").read_text())["spec"]
    assert keda["minReplicaCount"] >= 1 and "cooldownPeriod" not in keda
    behavior = keda["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleUp"]["stabilizationWindowSeconds"] > 0 and behavior["scaleUp"]["policies"]
    assert 0 < behavior["scaleDown"]["stabilizationWindowSeconds"] <= 3600
    assert _kubernetes()[1]["spec"]["podManagementPolicy"] == "Parallel"
