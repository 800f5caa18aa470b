// Why a pending job waits, as the job page and the job cards show it: job-api's `waiting` notice
// (queued, all_busy, no_worker, with the command that starts a worker, and for a job that needs a
// GPU how big: `needs`). The notice is computed
// when the job is read, from job-api's latest reading of who is online, so it is trusted over the
// phase it came with; only a later live status row that moves the phase on makes it stale.
import type { FinetuneJob, JobPhase, WaitingNotice } from '$lib/api/types';

export type WaitingReason = 'queued' | 'all_busy' | 'no_worker';

export interface ShownWaiting {
	reason: WaitingReason;
	message: string;
	/** The command that starts a worker for this job (no_worker only); null when not known. */
	command: string | null;
}

const GENERIC: Record<'queued' | 'no_worker', string> = {
	queued: 'Waiting for a worker to take it.',
	no_worker: 'No worker that takes this job is online. Add one on the Workers page and start it.'
};

function reasonOf(value: string): WaitingReason {
	return value === 'no_worker' || value === 'all_busy' ? value : 'queued';
}

/** The notice to show for a job, or null when it is not waiting (or nothing is known yet). */
export function waitingNoticeOf(job: Pick<FinetuneJob, 'status' | 'phase' | 'waiting'>): ShownWaiting | null {
	if (job.status !== 'pending') return null;
	const notice = job.waiting ?? null;
	if (!notice) {
		// Before job-api's first reading of who is online: the phase alone.
		return job.phase === 'no_worker'
			? { reason: 'no_worker', message: GENERIC.no_worker, command: null }
			: null;
	}
	const reason = reasonOf(notice.reason);
	return {
		reason,
		message: notice.message,
		command: reason === 'no_worker' ? notice.command || null : null
	};
}

/** A pending job's notice once a live status row moved its phase on: what the phase says, with
 * the command kept (it depends on the job's pool, type and provider, never on the reason). The
 * page reads the job again for job-api's own sentence. */
export function waitingAfterPhase(notice: WaitingNotice | null, phase: JobPhase): WaitingNotice | null {
	if (!notice) return null;
	const reason = phase === 'no_worker' ? 'no_worker' : 'queued';
	// queued and all_busy both mean a worker that takes the job is online.
	if ((reasonOf(notice.reason) === 'no_worker') === (reason === 'no_worker')) return notice;
	// A job that needs a GPU keeps saying how big (no CPU worker ever takes it).
	const message =
		reason === 'no_worker' && notice.needs
			? `This job ${notice.needs}; no worker with one is online. Start one on such a machine.`
			: GENERIC[reason];
	return { reason, message, command: notice.command, needs: notice.needs ?? null };
}
