"""Read an image's labels straight from a registry's v2 API (manifest -> config blob).

No pull needed: the preflight only has to know that the RC image exists and which revision it
was built from. The label name is the one the deployer checks after its pull
(``runbook.adapters.docker.REVISION_LABEL``). Multi-platform indexes pick linux/amd64.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import httpx

from runbook.adapters.docker import REVISION_LABEL

_ACCEPT = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"


class RegistryError(Exception):
    """The registry could not answer (unreachable, unknown image, refused)."""


@dataclass(frozen=True)
class ImageRef:
    registry: str
    repository: str
    reference: str

    @classmethod
    def parse(cls, image: str) -> ImageRef:
        first, _, rest = image.partition("/")
        if not rest or not ("." in first or ":" in first or first == "localhost"):
            first, rest = "registry-1.docker.io", image if rest else f"library/{image}"
        if "@" in rest:
            repo, ref = rest.split("@", 1)
        else:
            repo, _, ref = rest.rpartition(":") if ":" in rest else (rest, "", "latest")
        return cls(first, repo, ref or "latest")

    def __str__(self) -> str:
        sep = "@" if self.reference.startswith("sha256:") else ":"
        return f"{self.registry}/{self.repository}{sep}{self.reference}"


def image_labels(image: str, *, scheme: str = "https", token: str | None = None,
                 timeout: float = 10.0) -> dict[str, str]:
    """The labels of ``image`` (its config blob's ``config.Labels``)."""
    ref = ImageRef.parse(image)
    base = f"{scheme}://{ref.registry}/v2/{ref.repository}"
    headers = {"Accept": _ACCEPT}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    with httpx.Client(timeout=timeout, headers=headers, follow_redirects=True) as http:
        try:
            manifest = _get(http, f"{base}/manifests/{ref.reference}", ref)
            if "manifests" in manifest:  # an index: take linux/amd64, else the first
                chosen = next((m for m in manifest["manifests"]
                               if (m.get("platform") or {}).get("os") == "linux"
                               and (m.get("platform") or {}).get("architecture") == "amd64"),
                              (manifest["manifests"] or [None])[0])
                if chosen is None:
                    raise RegistryError(f"{ref}: empty image index")
                manifest = _get(http, f"{base}/manifests/{chosen['digest']}", ref)
            digest = (manifest.get("config") or {}).get("digest")
            if not digest:
                raise RegistryError(f"{ref}: manifest has no config blob")
            blob = _get(http, f"{base}/blobs/{digest}", ref)
        except httpx.HTTPError as e:
            raise RegistryError(f"registry {ref.registry} unreachable ({scheme}): "
                                f"{type(e).__name__}: {e}") from None
    return dict((blob.get("config") or {}).get("Labels") or {})


def _get(http: httpx.Client, url: str, ref: ImageRef) -> dict:
    r = http.get(url)
    if r.status_code == 401 and "authorization" not in http.headers:
        r = _retry_with_anonymous_token(http, url, r)
    if r.status_code == 404:
        raise RegistryError(f"image {ref} not found in the registry (manifest unknown)")
    if r.status_code in (401, 403):
        raise RegistryError(f"registry {ref.registry} refused {ref} (HTTP {r.status_code}): "
                            "set [preflight.release_freeze] registry_token")
    if r.status_code >= 400:
        raise RegistryError(f"registry {ref.registry}: HTTP {r.status_code} for {ref}")
    try:
        return r.json()
    except ValueError:
        raise RegistryError(f"registry {ref.registry} answered something that is not JSON "
                            f"for {ref}") from None


def _retry_with_anonymous_token(http: httpx.Client, url: str, r: httpx.Response
                                ) -> httpx.Response:
    """The token dance public registries use for anonymous pulls."""
    challenge = r.headers.get("www-authenticate", "")
    params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
    if not challenge.lower().startswith("bearer") or "realm" not in params:
        return r
    realm = params.pop("realm")
    tok = http.get(realm, params=params)
    if tok.status_code != 200:
        return r
    value = tok.json().get("token") or tok.json().get("access_token")
    return http.get(url, headers={"Authorization": f"Bearer {value}"}) if value else r


def image_revision(image: str, **kw) -> str | None:
    """The ``org.opencontainers.image.revision`` label of ``image`` (None when unlabelled)."""
    return image_labels(image, **kw).get(REVISION_LABEL)
