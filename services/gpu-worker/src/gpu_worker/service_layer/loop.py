"""The worker's main loop: take an offer, claim it, run it, take the next one.

While a job runs the worker consumes nothing (it holds no offer another worker could take).
SIGTERM: no new job; the running one is asked to stop (it checkpoints), is handed back with a
retryable failure, and the loop ends. A revoked credential ends the loop too (the running job,
if any, is no longer ours: job-api has requeued it). A broker that goes away mid-loop is waited
for: the link reconnects and the loop carries on.
"""

import asyncio
import contextlib
from typing import Generic

import structlog

from contracts.rpc import ClaimReply
from gpu_worker.domain.outcome import Outcome
from gpu_worker.service_layer.attempt import JobRun, JobSettings
from gpu_worker.service_layer.ports import Display, Link, OfferT, Toolkit

log = structlog.get_logger(__name__)


class Worker(Generic[OfferT]):
    def __init__(
        self,
        link: Link[OfferT],
        *,
        toolkit: Toolkit,
        settings: JobSettings,
        display: Display,
        claim_timeout: float = 10,
        max_jobs: int | None = None,
    ) -> None:
        self.link = link
        self._toolkit = toolkit
        self._settings = settings
        self._display = display
        self._claim_timeout = claim_timeout
        self._max_jobs = max_jobs
        self._stopping = asyncio.Event()
        self.current: JobRun | None = None
        self.outcomes: list[Outcome] = []

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def _stop_when_revoked(self, run: JobRun) -> None:
        """Revoked mid-job: job-api has requeued the job already; stop training it now."""
        await self.link.revoked.wait()
        log.warning("job.stopping_revoked", job_id=run.job_id)
        run.on_revoked()

    def request_shutdown(self) -> None:
        if not self._stopping.is_set():
            log.info(
                "worker.shutting_down", running_job=self.current.job_id if self.current else None
            )
        self._stopping.set()
        self.link.set_state("stopping")
        if self.current is not None:
            self.current.shutdown()

    async def _next_offer(self) -> OfferT | None:
        offer = asyncio.ensure_future(self.link.next_offer())
        stop = asyncio.create_task(self._stopping.wait())
        revoked = asyncio.create_task(self.link.revoked.wait())
        try:
            await asyncio.wait({offer, stop, revoked}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            revoked.cancel()
        if offer.done():
            return offer.result()
        offer.cancel()
        return None

    async def _claim(self, offer: OfferT) -> ClaimReply | None:
        try:
            reply = await self.link.claim(offer, timeout=self._claim_timeout)
        except Exception as exc:
            # No answer (a timeout, a link that dropped under the call): nothing was granted that
            # we know of. The offer goes back to the queue; a grant we never heard of expires
            # with its lease.
            log.warning("claim.unanswered", job_id=str(offer.job_id), error=repr(exc)[:200])
            with contextlib.suppress(Exception):
                await offer.message.nack(requeue=True)
            return None
        if not reply.granted or reply.job is None:
            log.info(
                "claim.refused",
                job_id=str(offer.job_id),
                refusal=str(reply.refusal),
                detail=reply.message,
            )
            return None
        log.info("job.claimed", job_id=str(offer.job_id), attempt=reply.job.attempt)
        return reply

    @property
    def revoked(self) -> bool:
        return self.link.revoked.is_set()

    async def run(self) -> list[Outcome]:
        log.info("worker.waiting", job_types=[str(t) for t in self.link.job_types])
        failures = 0
        while not self.stopping and not self.revoked:
            try:
                done = await self._take_one()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception:
                # The link failing in a way nobody foresaw (a channel closed under a call that
                # raised something unexpected): the loop goes on; the job it held, if any, is
                # requeued by its lease; a persistent failure is logged on every round.
                failures += 1
                log.exception("worker.loop_failed", failures=failures)
                await asyncio.sleep(min(30.0, 0.5 * 2**failures))
                continue
            if done:
                break
        return self.outcomes

    async def _take_one(self) -> bool:
        """Take an offer, claim it, run it. True when the loop should end."""
        self.link.set_state("idle")
        await self.link.resume_offers()
        offer = await self._next_offer()
        if self.revoked:
            return True
        await self.link.pause_offers()
        if offer is None:
            return True
        if self.stopping or self.revoked:
            with contextlib.suppress(Exception):
                await offer.message.nack(requeue=True)
            return True
        reply = await self._claim(offer)
        if reply is None or reply.job is None:
            return False
        await self._run_job(reply)
        return self._max_jobs is not None and len(self.outcomes) >= self._max_jobs

    async def _run_job(self, reply: ClaimReply) -> None:
        assert reply.job is not None
        assert self.link.reports is not None
        run = JobRun(
            reply.job,
            settings=self._settings,
            toolkit=self._toolkit,
            sink=self.link.reports,
            display=self._display,
        )
        self.current = run
        self.link.set_state("busy", reply.job.job_id)
        if self.stopping:
            run.shutdown()
        channel = None
        try:
            channel = await self.link.watch_cancel(
                reply.job.job_id,
                reply.job.attempt,
                run.on_cancel,
                claim_secret=reply.job.claim_secret,
            )
        except Exception:
            # Without the cancel queue the job still runs; job-api answers a stale report with
            # a cancel we would miss, but the lease and fencing keep the job safe.
            log.exception("cancel.subscribe_failed", job_id=run.job_id)
        revoked = asyncio.create_task(self._stop_when_revoked(run))
        try:
            self.outcomes.append(await run.run())
        finally:
            revoked.cancel()
            self.current = None
            if channel is not None:
                with contextlib.suppress(Exception):
                    await channel.close()
