"""The behaviour every :class:`shared.ports.deployments.Deployments` implementation must show.

A concrete module subclasses :class:`DeploymentsContract` and provides ``deployments``, ``image`` (a server
that listens on ``$PORT``), :meth:`make_revision_fail` and :meth:`inject_unavailable`. Every test uses its
own service, so a shared server needs no reset.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from shared.errors import InvalidInput, PermanentError, TransientError
from shared.ports.deployments import (
    Deployments,
    RevisionSpec,
    RevisionState,
    Service,
    TrafficStatus,
    TrafficTarget,
    revision_name,
)
from shared.ports.errors import AlreadyExists, Conflict
from tests.contract.eventually import until

#: A server for the contract (the real adapter runs it): answers every GET with its revision name.
SERVER_SCRIPT = """
import json, os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as two writes: no 40 ms delayed-ACK stall

    def do_GET(self):
        body = json.dumps({"revision": os.environ.get("K_REVISION", "")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""


def _ready(service: Service, revision: str) -> bool:
    found = service.revision(revision)
    return found is not None and found.ready


class DeploymentsContract:
    SETTLE_SECONDS = 60.0

    @pytest.fixture
    def deployments(self) -> Deployments:
        raise NotImplementedError("a concrete contract test overrides the `deployments` fixture")

    @pytest.fixture
    def image(self) -> str:
        raise NotImplementedError("a concrete contract test overrides the `image` fixture")

    @pytest.fixture
    def service(self) -> str:
        return f"svc-{uuid.uuid4().hex[:10]}"

    def make_revision_fail(self, deployments: Deployments, service: str, revision: str) -> None:
        """The next revision deployed to ``service`` (named ``revision``) fails to start."""
        raise NotImplementedError

    def inject_unavailable(self, deployments: Deployments, method: str) -> None:
        raise NotImplementedError

    # -- helpers --------------------------------------------------------------------------------------------

    def spec(self, service: str, image: str, suffix: str, **env: str) -> RevisionSpec:
        return RevisionSpec(
            name=revision_name(service, suffix),
            image=image,
            env={"MODEL_URI": f"gs://models/{suffix}/", **env},
            labels={"run-id": suffix, "model-version": "1"},
        )

    def settled(
        self, deployments: Deployments, service: str, done: Callable[[Service], bool] | None = None
    ) -> Service:
        """The service once its last change is in effect (and ``done(service)`` holds, if given)."""

        def ready(found: Service | None) -> bool:
            return found is not None and found.ready and (done is None or done(found))

        found = until(lambda: deployments.get_service(service), ready, self.SETTLE_SECONDS, 0.2)
        assert found is not None
        return found

    def running(self, deployments: Deployments, service: str, image: str) -> tuple[str, str]:
        """A service serving revision "a" at 100%, with revision "b" deployed at 0% as ``candidate``."""
        first, second = self.spec(service, image, "a"), self.spec(service, image, "b", FLAVOUR="new")
        deployments.create_service(service, first)
        self.settled(deployments, service)
        deployments.deploy_revision(service, second, tag="candidate")
        self.settled(deployments, service, lambda s: s.revision(second.name) is not None)
        return first.name, second.name

    # -- reading --------------------------------------------------------------------------------------------

    def test_a_missing_service_is_none(self, deployments: Deployments, service: str) -> None:
        assert deployments.get_service(service) is None

    def test_a_created_service_serves_its_revision_at_100(
        self, deployments: Deployments, service: str, image: str
    ) -> None:
        spec = self.spec(service, image, "a")

        etag = deployments.create_service(service, spec)

        assert etag
        found = self.settled(deployments, service)
        assert (found.name, found.resource_name.endswith(f"/services/{service}")) == (service, True)
        assert found.uri and found.etag
        assert found.serving() == [(spec.name, 100)]
        assert found.latest_ready_revision == found.latest_created_revision == spec.name
        revision = found.revision(spec.name)
        assert revision is not None and revision.ready and revision.state is RevisionState.READY
        assert (revision.image, revision.env, revision.labels) == (image, spec.env, spec.labels)
        assert deployments.get_traffic(service) == found.traffic_statuses

    def test_creating_again_is_harmless(self, deployments: Deployments, service: str, image: str) -> None:
        spec = self.spec(service, image, "a")
        deployments.create_service(service, spec)

        assert deployments.create_service(service, spec)
        assert [r.name for r in self.settled(deployments, service).revisions] == [spec.name]

    # -- deploying and moving traffic ------------------------------------------------------------------------

    def test_a_new_revision_arrives_at_0_percent_behind_its_tag(
        self, deployments: Deployments, service: str, image: str
    ) -> None:
        stable, candidate = self.running(deployments, service, image)

        found = self.settled(deployments, service, lambda s: _ready(s, candidate))

        assert found.serving() == [(stable, 100)]
        assert found.percent_of(candidate) == 0
        assert found.tag_uri("candidate")
        assert set(found.traffic) == {TrafficTarget(stable, 100), TrafficTarget(candidate, 0, "candidate")}
        revision = found.revision(candidate)
        assert revision is not None and revision.env["FLAVOUR"] == "new"
        assert [r.name for r in found.revisions] == [stable, candidate]

    def test_a_split_is_served_and_read_back_then_rolled_back(
        self, deployments: Deployments, service: str, image: str
    ) -> None:
        stable, candidate = self.running(deployments, service, image)
        self.settled(deployments, service, lambda s: _ready(s, candidate))

        deployments.set_traffic(
            service, [TrafficTarget(stable, 90), TrafficTarget(candidate, 10, "candidate")]
        )
        split = self.settled(deployments, service, lambda s: s.percent_of(candidate) == 10)
        assert split.serving() == [(stable, 90), (candidate, 10)]

        deployments.set_traffic(service, [TrafficTarget(stable, 100)])
        statuses = until(
            lambda: deployments.get_traffic(service),
            lambda t: [(s.revision, s.percent) for s in t] == [(stable, 100)],
        )
        assert statuses == (TrafficStatus(stable, 100, "", ""),)

    def test_redeploying_the_same_revision_keeps_its_share(
        self, deployments: Deployments, service: str, image: str
    ) -> None:
        stable, candidate = self.running(deployments, service, image)
        deployments.set_traffic(
            service, [TrafficTarget(stable, 90), TrafficTarget(candidate, 10, "candidate")]
        )
        self.settled(deployments, service, lambda s: s.percent_of(candidate) == 10)

        deployments.deploy_revision(service, self.spec(service, image, "b", FLAVOUR="new"), tag="candidate")

        found = self.settled(deployments, service)
        assert found.serving() == [(stable, 90), (candidate, 10)]
        assert [r.name for r in found.revisions] == [stable, candidate]

    def test_a_new_candidate_takes_the_tag_from_the_old_one(
        self, deployments: Deployments, service: str, image: str
    ) -> None:
        stable, old = self.running(deployments, service, image)
        newer = self.spec(service, image, "c")

        deployments.deploy_revision(service, newer, tag="candidate")

        found = self.settled(deployments, service, lambda s: s.revision(newer.name) is not None)
        assert set(found.traffic) == {TrafficTarget(stable, 100), TrafficTarget(newer.name, 0, "candidate")}
        assert old not in {target.revision for target in found.traffic}

    # -- refusals --------------------------------------------------------------------------------------------

    def test_a_stale_etag_is_a_conflict(self, deployments: Deployments, service: str, image: str) -> None:
        stable, candidate = self.running(deployments, service, image)
        seen = self.settled(deployments, service).etag
        deployments.set_traffic(service, [TrafficTarget(stable, 100)], etag=seen)

        with pytest.raises(Conflict) as raised:
            deployments.set_traffic(
                service, [TrafficTarget(stable, 50), TrafficTarget(candidate, 50)], etag=seen
            )

        assert isinstance(raised.value, TransientError)
        found = self.settled(deployments, service)
        assert found.serving() == [(stable, 100)]

    def test_a_revision_name_reused_with_another_config_already_exists(
        self, deployments: Deployments, service: str, image: str
    ) -> None:
        self.running(deployments, service, image)

        with pytest.raises(AlreadyExists) as raised:
            deployments.deploy_revision(service, self.spec(service, image, "b", FLAVOUR="other"))
        assert isinstance(raised.value, PermanentError)

    def test_a_split_cloud_run_would_refuse_is_invalid(
        self, deployments: Deployments, service: str, image: str
    ) -> None:
        stable, candidate = self.running(deployments, service, image)

        with pytest.raises(InvalidInput) as raised:
            deployments.set_traffic(
                service, [TrafficTarget(stable, 90), TrafficTarget(candidate, 20, "Bad Tag")]
            )
        assert len(raised.value.problems) == 2
        with pytest.raises(InvalidInput):
            deployments.set_traffic(service, [TrafficTarget(revision_name(service, "nope"), 100)])
        with pytest.raises(InvalidInput):
            deployments.deploy_revision(
                service, RevisionSpec(name="other-name", image=image, env={"PORT": "1"})
            )
        assert self.settled(deployments, service).serving() == [(stable, 100)]

    def test_a_revision_that_cannot_start_fails_and_never_serves(
        self, deployments: Deployments, service: str, image: str
    ) -> None:
        stable, _ = self.running(deployments, service, image)
        broken = self.spec(service, image, "broken")
        self.make_revision_fail(deployments, service, broken.name)

        deployments.deploy_revision(service, broken, tag="candidate")

        def failed(found: Service | None) -> bool:
            revision = found.revision(broken.name) if found is not None else None
            return revision is not None and revision.state is RevisionState.FAILED

        found = until(lambda: deployments.get_service(service), failed, self.SETTLE_SECONDS, 0.2)
        assert found is not None
        revision = found.revision(broken.name)
        assert revision is not None and revision.message and not revision.ready
        assert found.serving() == [(stable, 100)]

    def test_unavailable_is_transient_and_the_next_call_works(
        self, deployments: Deployments, service: str, image: str
    ) -> None:
        self.inject_unavailable(deployments, "create_service")

        with pytest.raises(TransientError):
            deployments.create_service(service, self.spec(service, image, "a"))
        deployments.create_service(service, self.spec(service, image, "a"))

        assert self.settled(deployments, service).serving() == [(revision_name(service, "a"), 100)]
