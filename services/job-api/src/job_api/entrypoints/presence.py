"""What the presence monitor last read of the worker registry, as HTTP answers use it: who could
take each group of pending jobs, and the notice a waiting job shows. Worked out once per group and
reading (every JOB_API_PRESENCE_INTERVAL), not per response."""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from contracts.catalogue import HardwareClass
from job_api.adapters.job_queries import PendingGroup
from job_api.domain.job import Job
from job_api.domain.worker import Worker
from job_api.entrypoints.schemas import WaitingNotice
from job_api.service_layer.workers import Availability, availability, waiting_notice


@dataclass
class PresenceView:
    online: timedelta
    public_base_url: str
    workers: list[Worker] = field(default_factory=list)
    # When the monitor read them (None: no reading yet: nothing is known, nothing is said).
    read_at: datetime | None = None
    _availability: dict[tuple[PendingGroup, HardwareClass | None], Availability] = field(
        default_factory=dict
    )
    _notices: dict[tuple[PendingGroup, HardwareClass], WaitingNotice] = field(default_factory=dict)

    def update(self, workers: list[Worker], *, now: datetime) -> None:
        self.workers, self.read_at = workers, now
        self._availability.clear()
        self._notices.clear()

    def availability(
        self, group: PendingGroup, hardware_class: HardwareClass | None = None
    ) -> Availability | None:
        """Who could take `group`'s jobs of `hardware_class` (None: of any class)."""
        if self.read_at is None:
            return None
        found = self._availability.get((group, hardware_class))
        if found is None:
            found = availability(
                self.workers,
                group,
                now=self.read_at,
                online=self.online,
                hardware_class=hardware_class,
            )
            self._availability[(group, hardware_class)] = found
        return found

    def notice(self, job: Job) -> WaitingNotice | None:
        """A pending job's notice (why it waits, what starts a worker)."""
        group = (job.worker_pool, job.owner_pool, job.job_type, job.gpu_provider)
        key = (group, job.hardware_class)
        notice = self._notices.get(key)
        if notice is None:
            found = self.availability(group, job.hardware_class)
            if found is None:
                return None
            notice = WaitingNotice.model_validate(
                waiting_notice(
                    group,
                    found,
                    public_base_url=self.public_base_url,
                    hardware_class=job.hardware_class,
                )
            )
            self._notices[key] = notice
        return notice
