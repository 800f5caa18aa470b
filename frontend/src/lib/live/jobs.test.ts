import { describe, expect, it } from 'vitest';
import type { FinetuneJob, JobEvent } from '$lib/api/types';
import { applyEvent, applyToList, parseStreamEvent, withWaitingFrom } from './jobs';

export function makeJob(over: Partial<FinetuneJob> = {}): FinetuneJob {
	return {
		id: 'j1',
		user_id: 'alice',
		project_id: null,
		job_type: 'embedding',
		base_model: 'sentence-transformers/all-MiniLM-L6-v2',
		training_data_url: 'ftd://datasets/d1',
		dataset_id: 'd1',
		output_model: 'alice/emb',
		output_revision: null,
		gpu_provider: 'local',
		status: 'pending',
		phase: 'queued',
		progress: 0,
		error: null,
		failure_class: null,
		logs_url: null,
		hyperparameters: {},
		metrics: {},
		step: null,
		total_steps: null,
		epoch: null,
		eta_seconds: null,
		attempt: 0,
		max_attempts: 3,
		worker_id: null,
		worker_pool: 'shared',
		hardware_class: 'cpu',
		waiting: null,
		lease_expires_at: null,
		created_at: '2026-01-01T00:00:00Z',
		updated_at: '2026-01-01T00:00:00Z',
		started_at: null,
		completed_at: null,
		...over
	};
}

let nextId = 1;
export function ev(
	kind: 'status' | 'progress',
	data: Record<string, unknown>,
	over: Partial<JobEvent> = {}
): JobEvent {
	return { id: nextId++, job_id: 'j1', attempt: 1, kind, data, created_at: '2026-01-01T00:01:00Z', ...over };
}

const status = (to: string, extra: Record<string, unknown> = {}) =>
	ev('status', {
		from_status: null,
		to_status: to,
		attempt: 1,
		reason: null,
		phase: 'claimed',
		error: null,
		failure_class: null,
		...extra
	});

describe('applyEvent', () => {
	it('follows the status rows', () => {
		let job = makeJob();
		job = applyEvent(job, status('running'));
		expect(job).toMatchObject({
			status: 'running',
			attempt: 1,
			started_at: '2026-01-01T00:01:00Z',
			completed_at: null
		});
		job = applyEvent(job, status('completed', { phase: 'done' }));
		expect(job).toMatchObject({
			status: 'completed',
			progress: 100,
			phase: 'done',
			completed_at: '2026-01-01T00:01:00Z'
		});
	});

	it('shows the error of a failure and clears it on a retry', () => {
		let job = makeJob({ status: 'running', attempt: 1 });
		job = applyEvent(
			job,
			status('pending', { error: 'CUDA OOM', failure_class: 'infra_error', phase: 'queued' })
		);
		expect(job.error).toBe('CUDA OOM');
		job = applyEvent(job, status('running', { attempt: 2, error: null }));
		expect(job.error).toBeNull();
		expect(job.attempt).toBe(2);
	});

	it('applies progress of the current attempt only, never backwards', () => {
		let job = makeJob({ status: 'running', attempt: 2, progress: 40 });
		expect(applyEvent(job, ev('progress', { progress: 90 }, { attempt: 1 }))).toBe(job);
		job = applyEvent(
			job,
			ev(
				'progress',
				{ progress: 55, step: 11, total_steps: 20, loss: 0.5, metrics: { acc: 0.8 } },
				{ attempt: 2 }
			)
		);
		expect(job).toMatchObject({ progress: 55, step: 11, total_steps: 20, metrics: { acc: 0.8, loss: 0.5 } });
		expect(applyEvent(job, ev('progress', { progress: 50 }, { attempt: 2 })).progress).toBe(55);
	});

	it('drops the waiting notice once the job leaves pending, follows a new phase while pending', () => {
		const waiting = { reason: 'no_worker' as const, message: 'No worker.', command: 'ftd-worker run' };
		let job = makeJob({ phase: 'no_worker', waiting });
		expect(applyEvent(job, status('pending', { phase: 'no_worker' })).waiting).toEqual(waiting);
		job = applyEvent(job, status('pending', { phase: 'queued', reason: 'worker_available' }));
		expect(job.waiting).toMatchObject({ reason: 'queued', command: 'ftd-worker run' });
		job = applyEvent(job, status('pending', { phase: 'no_worker', reason: 'no_worker' }));
		expect(job.waiting).toMatchObject({ reason: 'no_worker', command: 'ftd-worker run' });
		job = applyEvent(job, status('running'));
		expect(job.waiting).toBeNull();
	});

	it("ignores another job's rows", () => {
		const job = makeJob();
		expect(applyEvent(job, status('running', {}))).not.toBe(job);
		expect(applyEvent(job, { ...status('running'), job_id: 'other' })).toBe(job);
	});
});

describe('applyToList', () => {
	it('updates the job in place and flags unknown jobs', () => {
		const jobs = [makeJob({ id: 'a' }), makeJob({ id: 'j1' })];
		const r = applyToList(jobs, status('running'));
		expect(r.unknown).toBe(false);
		expect(r.jobs[1]!.status).toBe('running');
		expect(r.jobs[0]).toBe(jobs[0]);
		expect(applyToList(jobs, { ...status('running'), job_id: 'zzz' }).unknown).toBe(true);
	});
});

describe('withWaitingFrom', () => {
	const notice = (reason: 'queued' | 'all_busy' | 'no_worker') => ({
		reason,
		message: reason,
		command: 'ftd-worker run'
	});

	it("takes a fresh read's notice and phase for jobs pending in both", () => {
		const jobs = [
			makeJob({ id: 'a', waiting: notice('queued') }),
			makeJob({ id: 'b', status: 'running', phase: 'training' }),
			makeJob({ id: 'c', waiting: notice('queued') })
		];
		const fresh = [
			makeJob({ id: 'a', phase: 'no_worker', waiting: notice('no_worker') }),
			makeJob({ id: 'b', waiting: notice('queued') })
		];
		const next = withWaitingFrom(jobs, fresh);
		expect(next[0]).toMatchObject({ phase: 'no_worker', waiting: { reason: 'no_worker' } });
		// Running here (the stream said so): a pending read from before does not undo it.
		expect(next[1]).toBe(jobs[1]);
		// Not in the fresh read (another page, or no longer pending): left alone.
		expect(next[2]).toBe(jobs[2]);
	});

	it('returns the same list when nothing changed', () => {
		const jobs = [makeJob({ id: 'a', waiting: notice('all_busy') })];
		expect(withWaitingFrom(jobs, [makeJob({ id: 'a', waiting: notice('all_busy') })])).toBe(jobs);
	});
});

describe('parseStreamEvent', () => {
	it('reads list and single-job snapshots and history rows', () => {
		expect(parseStreamEvent('snapshot', JSON.stringify([makeJob()]))).toMatchObject({
			kind: 'snapshot',
			jobs: [{ id: 'j1' }]
		});
		expect(parseStreamEvent('snapshot', JSON.stringify(makeJob()))).toMatchObject({
			kind: 'snapshot',
			jobs: [{ id: 'j1' }]
		});
		expect(parseStreamEvent('progress', JSON.stringify(ev('progress', {})))).toMatchObject({ kind: 'event' });
		expect(parseStreamEvent('progress', 'not json')).toBeNull();
		expect(parseStreamEvent('ping', '{}')).toBeNull();
	});
});
