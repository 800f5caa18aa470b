// Applies the job stream (snapshot, status and progress rows) to jobs the UI holds. Pure
// functions, so the dashboard and the detail page share them and the tests can drive them.
import type { FinetuneJob, JobEvent, ProgressData, StatusData } from '$lib/api/types';
import { waitingAfterPhase } from '$lib/waiting';

/** The job with one history row applied; the same object when the row changes nothing. */
export function applyEvent(job: FinetuneJob, event: JobEvent): FinetuneJob {
	if (event.job_id !== job.id) return job;
	if (event.kind === 'status') {
		const d = event.data as unknown as StatusData;
		const now = event.created_at;
		return {
			...job,
			status: d.to_status,
			phase: d.phase ?? job.phase,
			attempt: d.attempt ?? job.attempt,
			error: d.error ?? (d.to_status === 'pending' || d.to_status === 'running' ? null : job.error),
			failure_class: d.failure_class ?? job.failure_class,
			started_at: d.to_status === 'running' && !job.started_at ? now : job.started_at,
			completed_at:
				d.to_status === 'completed' || d.to_status === 'failed' || d.to_status === 'cancelled'
					? (job.completed_at ?? now)
					: d.to_status === 'pending'
						? null
						: job.completed_at,
			progress: d.to_status === 'completed' ? 100 : job.progress,
			// Only a pending job waits; a new phase makes its notice say so until the page reads it.
			waiting:
				d.to_status !== 'pending'
					? null
					: d.phase && d.phase !== job.phase
						? waitingAfterPhase(job.waiting ?? null, d.phase)
						: (job.waiting ?? null),
			updated_at: now
		};
	}
	if (event.kind === 'progress') {
		// A report of an attempt that is no longer current says nothing about the job now.
		if (event.attempt < job.attempt || job.status !== 'running') return job;
		const d = event.data as ProgressData;
		return {
			...job,
			progress:
				typeof d.progress === 'number'
					? Math.max(d.progress, event.attempt === job.attempt ? job.progress : 0)
					: job.progress,
			phase: d.phase ?? job.phase,
			step: d.step ?? job.step,
			total_steps: d.total_steps ?? job.total_steps,
			epoch: d.epoch ?? job.epoch,
			eta_seconds: d.eta_seconds ?? job.eta_seconds,
			metrics: {
				...job.metrics,
				...(d.metrics ?? {}),
				...(typeof d.loss === 'number' ? { loss: d.loss } : {})
			},
			logs_url: d.logs_url ?? job.logs_url,
			updated_at: event.created_at
		};
	}
	return job;
}

/** Parses one SSE message of a job stream; null for what the UI does not use. */
export function parseStreamEvent(
	name: string,
	data: string
): { kind: 'snapshot'; jobs: FinetuneJob[] } | { kind: 'event'; event: JobEvent } | null {
	let body: unknown;
	try {
		body = JSON.parse(data);
	} catch {
		return null;
	}
	if (name === 'snapshot') {
		if (Array.isArray(body)) return { kind: 'snapshot', jobs: body as FinetuneJob[] };
		if (typeof body === 'object' && body !== null && 'id' in body)
			return { kind: 'snapshot', jobs: [body as FinetuneJob] };
		return null;
	}
	if (typeof body === 'object' && body !== null && 'job_id' in body && 'kind' in body) {
		return { kind: 'event', event: body as JobEvent };
	}
	return null;
}

/** The list with the `waiting` notice (and phase) of its pending jobs taken from a fresh read of
 * pending jobs; a job that is no longer pending in either is left to the stream. */
export function withWaitingFrom(jobs: FinetuneJob[], fresh: readonly FinetuneJob[]): FinetuneJob[] {
	const byId = new Map(fresh.map((j) => [j.id, j]));
	let changed = false;
	const next = jobs.map((job) => {
		const f = byId.get(job.id);
		if (!f || job.status !== 'pending' || f.status !== 'pending') return job;
		if (f.phase === job.phase && JSON.stringify(f.waiting ?? null) === JSON.stringify(job.waiting ?? null))
			return job;
		changed = true;
		return { ...job, phase: f.phase, waiting: f.waiting ?? null };
	});
	return changed ? next : jobs;
}

/** Merges a list with one event; `unknown` is true when the event is about a job not in the list. */
export function applyToList(jobs: FinetuneJob[], event: JobEvent): { jobs: FinetuneJob[]; unknown: boolean } {
	const i = jobs.findIndex((j) => j.id === event.job_id);
	if (i < 0) return { jobs, unknown: true };
	const current = jobs[i] as FinetuneJob;
	const next = applyEvent(current, event);
	if (next === current) return { jobs, unknown: false };
	const copy = jobs.slice();
	copy[i] = next;
	return { jobs: copy, unknown: false };
}
