"""Deploy to a Kubernetes namespace with the official client (``kubernetes``).

The deploy server-side applies the team's manifests (``field_manager``, conflicts forced: the
cutover owns the fields it applies) with the release image substituted, pinned by the digest
the registry gives for the tag; then it waits for every Deployment of the manifests to roll
out (observed generation, updated, ready-and-available and no old replicas: what
``kubectl rollout status`` waits for). The revert re-applies the same manifests with the images
recorded before the deploy, so apply's idempotence makes a Retry safe. Migrations run as a Job
from the deployed image with the pod template of a release container (its env, envFrom and
host network), the database URL passed through a short-lived Secret, never in the Job's spec.

Every API error becomes a :class:`StepFailed` that says what was asked and what the server (or
the network) answered; nothing here raises the client's own exceptions to a step.

The modules, by reason to change: ``client`` (the API client, its errors as one clear line,
the manifests, why pods are not ready), ``deployer`` (which images, the apply, the rollout
wait), ``jobs`` (a Job from a release image; the migrator built on it), ``access`` (what
`golive config check` asks the API server the bot may do).
"""
