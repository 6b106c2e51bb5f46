"""What `golive config check` asks the cluster: it answers, the namespace exists, and a
SelfSubjectAccessReview for each verb and resource the deployer needs (read-only)."""

from __future__ import annotations

from runbook.adapters.kubernetes.client import KubeClient
from runbook.errors import StepFailed

# What the deployer asks the API server for: (verb, group, resource). `golive config check`
# asks a SelfSubjectAccessReview for each; deploy/k8s-rbac.yaml grants exactly these.
NEEDED_ACCESS: tuple[tuple[str, str, str], ...] = (
    ("get", "apps", "deployments"), ("list", "apps", "deployments"),
    ("patch", "apps", "deployments"), ("list", "apps", "replicasets"),
    ("list", "", "pods"), ("get", "", "pods/log"), ("list", "", "events"),
    ("create", "batch", "jobs"), ("get", "batch", "jobs"), ("delete", "batch", "jobs"),
    ("create", "", "secrets"), ("delete", "", "secrets"),
)


def access_review(kube: KubeClient) -> list[tuple[bool, str]]:
    """The cluster answers, the namespace exists, and a SelfSubjectAccessReview per verb
    and resource the deployer needs: (ok, line) each."""
    from kubernetes import client

    ns = kube.cfg.namespace
    with kube.calling("asking the API server its version"):
        version = client.VersionApi(kube.api).get_code(**kube._kw())
    out = [(True, f"Kubernetes API server {kube.server} answers ({version.git_version})")]
    try:
        with kube.calling(f"reading namespace {ns}"):
            kube._core().read_namespace(ns, **kube._kw())
        out.append((True, f"namespace {ns} exists"))
    except StepFailed as e:
        if " 404 " in e.message:
            out.append((False, (f"namespace {ns} does not exist: create it (`kubectl "
                               f"create namespace {ns}`)")))
        elif " 403 " in e.message:  # a namespaced Role cannot grant reading namespaces
            out.append((True, (f"namespace {ns}: the bot may not read namespaces (a "
                              "cluster-scoped permission it does not need); not checked")))
        else:
            out.append((False, e.message))
    needed = list(NEEDED_ACCESS)
    try:
        for verb, group, resource in _applied_resources(kube):
            if (verb, group, resource) not in needed:
                needed.append((verb, group, resource))
    except StepFailed as e:
        out.append((False, e.message))
    auth = client.AuthorizationV1Api(kube.api)
    denied = []
    for verb, group, resource in needed:
        res, _, sub = resource.partition("/")
        review = client.V1SelfSubjectAccessReview(spec=client.V1SelfSubjectAccessReviewSpec(
            resource_attributes=client.V1ResourceAttributes(
                namespace=ns, verb=verb, group=group, resource=res,
                subresource=sub or None)))
        with kube.calling("asking a SelfSubjectAccessReview"):
            allowed = auth.create_self_subject_access_review(
                review, **kube._kw()).status.allowed
        if not allowed:
            denied.append(f"{verb} {group + '/' if group else ''}{resource}")
    if denied:
        out.append((False, (f"in namespace {ns} the bot may not: {', '.join(denied)}; "
                           "grant them (deploy/k8s-rbac.yaml)")))
    else:
        out.append((True, (f"in namespace {ns} the bot may do the {len(needed)} things "
                          "the deployer needs")))
    return out


def _applied_resources(kube: KubeClient) -> list[tuple[str, str, str]]:
    """("patch", group, plural) and ("get", ...) for every kind the manifests hold."""
    out = []
    for obj in kube.manifests():
        with kube.calling(f"looking up {obj['kind']}"):
            res = kube.dyn.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
        out += [("patch", res.group or "", res.name), ("get", res.group or "", res.name)]
    return out
