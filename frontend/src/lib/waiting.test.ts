import { describe, expect, it } from 'vitest';
import type { FinetuneJob } from '$lib/api/types';
import { waitingAfterPhase, waitingNoticeOf } from './waiting';

type Shape = Pick<FinetuneJob, 'status' | 'phase' | 'waiting'>;
const job = (over: Partial<Shape> = {}): Shape => ({
	status: 'pending',
	phase: 'queued',
	waiting: null,
	...over
});
const COMMAND =
	'FTD_WORKER_TOKEN=<worker token> ftd-worker run --api-url http://x --provider local --job-type embedding';

describe('waitingNoticeOf', () => {
	it("shows job-api's message, and the command only when no worker is online", () => {
		expect(
			waitingNoticeOf(
				job({
					phase: 'no_worker',
					waiting: { reason: 'no_worker', message: 'No worker that takes embedding jobs.', command: COMMAND }
				})
			)
		).toEqual({ reason: 'no_worker', message: 'No worker that takes embedding jobs.', command: COMMAND });
		expect(
			waitingNoticeOf(job({ waiting: { reason: 'all_busy', message: 'All 2 are busy.', command: COMMAND } }))
		).toEqual({ reason: 'all_busy', message: 'All 2 are busy.', command: null });
		expect(
			waitingNoticeOf(job({ waiting: { reason: 'queued', message: 'Starts shortly.', command: COMMAND } }))
		).toEqual({ reason: 'queued', message: 'Starts shortly.', command: null });
	});

	it('trusts the notice over the phase it came with (it is read from the latest presence)', () => {
		// A new job reads "no worker" before the presence loop has written the phase.
		const waiting = { reason: 'no_worker' as const, message: 'No worker.', command: COMMAND };
		expect(waitingNoticeOf(job({ phase: 'queued', waiting }))).toMatchObject({
			reason: 'no_worker',
			command: COMMAND
		});
	});

	it('shows nothing for a job that does not wait', () => {
		const waiting = { reason: 'no_worker' as const, message: 'm', command: COMMAND };
		for (const status of ['running', 'completed', 'failed', 'cancelled'] as const) {
			expect(waitingNoticeOf(job({ status, phase: 'no_worker', waiting }))).toBeNull();
		}
		// Before job-api's first reading of who is online a queued job says nothing.
		expect(waitingNoticeOf(job())).toBeNull();
	});

	it('still says no worker is online when there is no notice', () => {
		expect(waitingNoticeOf(job({ phase: 'no_worker' }))).toMatchObject({
			reason: 'no_worker',
			command: null
		});
	});

	it('reads an unknown reason as queued, and an empty command as none', () => {
		expect(
			// A reason this UI does not know yet (a newer server).
			waitingNoticeOf(
				job({ waiting: { reason: 'warming_up' as 'queued', message: 'Soon.', command: COMMAND } })
			)
		).toEqual({ reason: 'queued', message: 'Soon.', command: null });
		expect(
			waitingNoticeOf(
				job({ phase: 'no_worker', waiting: { reason: 'no_worker', message: 'm', command: '' } })
			)?.command
		).toBeNull();
	});
});

describe('waitingAfterPhase', () => {
	it('keeps a notice that agrees with the new phase', () => {
		const busy = { reason: 'all_busy' as const, message: 'All busy.', command: COMMAND };
		expect(waitingAfterPhase(busy, 'queued')).toBe(busy);
	});

	it('says what the new phase says, keeping the command', () => {
		const queued = { reason: 'queued' as const, message: 'Starts shortly.', command: COMMAND };
		expect(waitingAfterPhase(queued, 'no_worker')).toMatchObject({ reason: 'no_worker', command: COMMAND });
		const none = { reason: 'no_worker' as const, message: 'No worker.', command: COMMAND };
		expect(waitingAfterPhase(none, 'queued')).toMatchObject({ reason: 'queued', command: COMMAND });
		expect(waitingAfterPhase(null, 'no_worker')).toBeNull();
	});

	it('keeps saying how big a GPU a job needs when no worker is online again', () => {
		const needs = 'needs a GPU worker with ≥ 24 GB';
		const queued = { reason: 'queued' as const, message: 'Starts shortly.', command: COMMAND, needs };
		expect(waitingAfterPhase(queued, 'no_worker')).toEqual({
			reason: 'no_worker',
			message: `This job ${needs}; no worker with one is online. Start one on such a machine.`,
			command: COMMAND,
			needs
		});
		const small = { reason: 'queued' as const, message: 'Starts shortly.', command: COMMAND };
		expect(waitingAfterPhase(small, 'no_worker')?.message).toMatch(/^No worker that takes this job/);
	});
});
