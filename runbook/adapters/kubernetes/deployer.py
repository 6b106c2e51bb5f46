"""The deploy and its revert: each release container's image for a tag (pinned by the
registry's digest), what runs now and ran before, the manifests server-side applied with the
images substituted, and the rollout wait (``kubectl rollout status``'s rule)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from runbook.adapters.images import REVISION_LABEL, ImageInfo, Progress
from runbook.adapters.kubernetes.access import access_review
from runbook.adapters.kubernetes.client import KubeClient
from runbook.adapters.registry import _ACCEPT, ImageRef, RegistryError, image_labels
from runbook.errors import StepFailed
from runbook.target_deployers import ContainerImage

REVISION_ANNOTATION = "deployment.kubernetes.io/revision"


def key(c: ContainerImage) -> str:
    return f"{c.deployment}/{c.container}"


def manifest_digest(image: str, *, scheme: str, token: str | None, timeout: float) -> str:
    """The digest the registry serves for ``image``'s tag (what a pull by tag would get)."""
    ref = ImageRef.parse(image)
    headers = {"Accept": _ACCEPT}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    url = f"{scheme}://{ref.registry}/v2/{ref.repository}/manifests/{ref.reference}"
    try:
        r = httpx.head(url, headers=headers, timeout=timeout, follow_redirects=True)
        if r.status_code == 405 or (r.is_success and "docker-content-digest" not in r.headers):
            r = httpx.get(url, headers=headers, timeout=timeout, follow_redirects=True)
    except httpx.HTTPError as e:
        raise RegistryError(f"registry {ref.registry} unreachable ({scheme}): "
                            f"{type(e).__name__}: {e}") from None
    if r.status_code == 404:
        raise RegistryError(f"image {ref} not found in the registry (manifest unknown)")
    if r.status_code in (401, 403):
        raise RegistryError(f"registry {ref.registry} refused {ref} (HTTP {r.status_code}): "
                            "set [target.deployer] registry_token")
    if r.status_code >= 400:
        raise RegistryError(f"registry {ref.registry}: HTTP {r.status_code} for {ref}")
    digest = r.headers.get("docker-content-digest", "")
    if not digest.startswith("sha256:"):
        raise RegistryError(f"registry {ref.registry} gave no digest for {ref}")
    return digest


def _digest_of(image: str) -> str | None:
    return image.split("@", 1)[1] if "@" in image else None


class KubernetesDeployer(KubeClient):
    """The deploy, its rollout wait and the revert, for one namespace."""

    # -- images --------------------------------------------------------------------------------
    def resolve(self, tag: str, progress: Progress) -> dict[str, ImageInfo]:
        """Each release container's image for ``tag``, pinned by the registry's digest, with
        its revision label. Nothing in the cluster changes."""
        token = self.cfg.registry_token.get_secret_value() if self.cfg.registry_token else None
        out: dict[str, ImageInfo] = {}
        by_image: dict[str, ImageInfo] = {}
        for c in self.cfg.containers:
            ref = self.cfg.image(c, tag)
            if ref not in by_image:
                try:
                    digest = manifest_digest(ref, scheme=self.cfg.registry_scheme, token=token,
                                             timeout=self.cfg.request_timeout_s)
                    labels = image_labels(f"{ref.rsplit(':', 1)[0]}@{digest}",
                                          scheme=self.cfg.registry_scheme, token=token,
                                          timeout=self.cfg.request_timeout_s)
                except RegistryError as e:
                    raise StepFailed(self._mask(str(e))) from None
                by_image[ref] = ImageInfo(f"{ref}@{digest}", digest, labels.get(REVISION_LABEL))
                progress(f"{ref} is {digest[:19]}")
            out[key(c)] = by_image[ref]
        return out

    def _labels_of(self, image: str) -> str | None:
        token = self.cfg.registry_token.get_secret_value() if self.cfg.registry_token else None
        name, _, dg = image.partition("@")
        if dg and ":" in name.rsplit("/", 1)[-1]:
            image = f"{name.rsplit(':', 1)[0]}@{dg}"  # repo:tag@digest -> repo@digest
        try:
            return image_labels(image, scheme=self.cfg.registry_scheme, token=token,
                                timeout=self.cfg.request_timeout_s).get(REVISION_LABEL)
        except RegistryError:
            return None

    def current_images(self) -> dict[str, dict[str, Any]]:
        """What each release container runs now (as facts: image, digest, revision label,
        the Deployment's revision); a Deployment that does not exist yet is left out."""
        from kubernetes.client.exceptions import ApiException

        out: dict[str, dict[str, Any]] = {}
        apps = self._apps()
        for c in self.cfg.containers:
            with self.calling(f"reading Deployment {c.deployment}"):
                try:
                    d = apps.read_namespaced_deployment(c.deployment, self.cfg.namespace,
                                                        **self._kw())
                except ApiException as e:
                    if e.status == 404:
                        continue
                    raise
            image = next((x.image for x in d.spec.template.spec.containers
                          if x.name == c.container), None)
            if image is None:
                continue
            info = ImageInfo(image, _digest_of(image), self._labels_of(image))
            out[key(c)] = {**info.as_fact(), "deployment_revision":
                           (d.metadata.annotations or {}).get(REVISION_ANNOTATION)}
        return out

    def previous_images(self, targets: Mapping[str, ImageInfo], progress: Progress
                        ) -> dict[str, dict[str, Any]]:
        """What runs before this deploy, as :meth:`current_images`. A container that already
        runs its target image (a Retry after the bot died mid-rollout) is given the image of
        its Deployment's newest earlier ReplicaSet instead: the revert still goes back."""
        now = self.current_images()
        for k, fact in list(now.items()):
            target = targets.get(k)
            if target is None or fact.get("image") != target.image:
                continue
            earlier = self._earlier_image(k, target.image)
            if earlier is not None:
                progress(f"{k} already runs {target.tag}@{(target.image_id or '')[:19]} (an "
                         f"earlier attempt); its previous revision ran {earlier['image']}")
                now[k] = earlier
            else:
                now.pop(k)
        return now

    def _earlier_image(self, k: str, image: str) -> dict[str, Any] | None:
        dep, _, cname = k.partition("/")
        with self.calling(f"reading Deployment {dep}'s ReplicaSets"):
            d = self._apps().read_namespaced_deployment(dep, self.cfg.namespace, **self._kw())
            selector = ",".join(f"{a}={b}" for a, b in (d.spec.selector.match_labels or {}
                                                        ).items())
            sets = self._apps().list_namespaced_replica_set(
                self.cfg.namespace, label_selector=selector, **self._kw()).items
        history = []
        for rs in sets:
            owners = rs.metadata.owner_references or []
            if not any(o.kind == "Deployment" and o.name == dep for o in owners):
                continue
            rev = (rs.metadata.annotations or {}).get(REVISION_ANNOTATION, "0")
            img = next((c.image for c in rs.spec.template.spec.containers if c.name == cname),
                       None)
            if img and img != image and rev.isdigit():
                history.append((int(rev), img))
        if not history:
            return None
        rev, img = max(history)
        return {**ImageInfo(img, _digest_of(img), self._labels_of(img)).as_fact(),
                "deployment_revision": str(rev)}

    # -- apply ---------------------------------------------------------------------------------
    def rendered(self, images: Mapping[str, str]) -> list[dict[str, Any]]:
        """The manifests with each release container's image replaced (``images``: key ->
        image), in the configured namespace; refused when a configured container is missing."""
        objects = self.manifests()
        seen: set[str] = set()
        for obj in objects:
            meta = obj.setdefault("metadata", {})
            ns = meta.get("namespace")
            if ns and ns != self.cfg.namespace:
                raise StepFailed(f"{obj['kind']}/{meta['name']} names namespace {ns}, but "
                                 f"[target.deployer] namespace is {self.cfg.namespace}")
            if obj.get("kind") != "Deployment":
                continue
            pod = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
            for container in pod.get("containers") or []:
                k = f"{meta['name']}/{container.get('name')}"
                if k in images:
                    container["image"] = images[k]
                    seen.add(k)
        missing = sorted(set(images) - seen)
        if missing:
            raise StepFailed("the manifests have no container " + ", ".join(missing) +
                             " (a Deployment/container named in [target.deployer] containers)")
        return objects

    def apply(self, images: Mapping[str, str], progress: Progress) -> list[str]:
        """Server-side apply of every manifest; the names of the Deployments applied."""
        deployments: list[str] = []
        for obj in self.rendered(images):
            kind, name = obj["kind"], obj["metadata"]["name"]
            with self.calling(f"applying {kind}/{name}"):
                res = self.dyn.resources.get(api_version=obj["apiVersion"], kind=kind)
                if res.namespaced:
                    obj["metadata"]["namespace"] = self.cfg.namespace
                res.server_side_apply(body=obj, name=name,
                                      namespace=self.cfg.namespace if res.namespaced else None,
                                      field_manager=self.cfg.field_manager,
                                      force_conflicts=True, **self._kw())
            progress(f"applied {kind}/{name}")
            if kind == "Deployment":
                deployments.append(name)
        return deployments

    # -- the rollout ---------------------------------------------------------------------------
    def rollout_state(self, name: str) -> tuple[bool, str, Any]:
        """(complete, what it waits for, the Deployment), as ``kubectl rollout status``."""
        with self.calling(f"reading Deployment {name}"):
            d = self._apps().read_namespaced_deployment(name, self.cfg.namespace, **self._kw())
        want = d.spec.replicas if d.spec.replicas is not None else 1
        st = d.status
        if (st.observed_generation or 0) < (d.metadata.generation or 0):
            return False, (f"{name}: waiting for the controller to see generation "
                          f"{d.metadata.generation}"), d
        for cond in st.conditions or []:
            if cond.type == "Progressing" and cond.reason == "ProgressDeadlineExceeded":
                raise StepFailed(f"{name}: rollout exceeded its progress deadline "
                                 f"({cond.message})")
        updated, total = st.updated_replicas or 0, st.replicas or 0
        available = st.available_replicas or 0
        if updated < want:
            return False, f"{name}: {updated} of {want} new replicas updated", d
        if total > updated:
            return False, f"{name}: {total - updated} old replica(s) pending termination", d
        if available < updated:
            return False, f"{name}: {available} of {updated} updated replicas available", d
        return True, (f"{name}: rolled out ({available}/{want} available, revision "
                     f"{(d.metadata.annotations or {}).get(REVISION_ANNOTATION, '?')})"), d

    def wait_rollout(self, names: list[str], deadline: float, progress: Progress) -> None:
        """Until every Deployment has rolled out; at the deadline the pods' reasons."""
        pending = list(dict.fromkeys(names))
        last: dict[str, str] = {}
        while True:
            for name in list(pending):
                done, line, _ = self.rollout_state(name)
                if line != last.get(name):
                    progress(line)
                    last[name] = line
                if done:
                    pending.remove(name)
            if not pending:
                return
            if self.clock() >= deadline:
                reasons = [r for n in pending for r in self.pod_reasons(n)]
                raise StepFailed(
                    f"rollout not complete within {self.cfg.rollout_timeout_s:g} s: "
                    + "; ".join(last[n] for n in pending)
                    + ("\npods: " + "\n".join(reasons) if reasons else ""))
            self.sleep(min(self.cfg.poll_interval_s, max(0.0, deadline - self.clock())))

    # -- config check --------------------------------------------------------------------------
    def access_review(self) -> list[tuple[bool, str]]:
        """What `golive config check` asks the cluster (:func:`access.access_review`)."""
        return access_review(self)
