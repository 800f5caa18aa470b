import { describe, expect, it } from 'vitest';
import type { Worker } from '$lib/api/types';
import {
	canRevoke,
	groupWorkers,
	lastSeenText,
	ownWorkerCount,
	providerText,
	runOnWarning,
	servesText,
	workerNameProblem
} from './workers';

function makeWorker(over: Partial<Worker> = {}): Worker {
	return {
		id: 'w1',
		name: 'colab-t4',
		pool: 'private',
		owner_id: 'alice',
		status: 'idle',
		provider: 'colab',
		job_types: ['embedding', 'classifier'],
		hardware: '1 CUDA GPU(s): Tesla T4 (16 GB)',
		gpu_memory_gb: 16,
		hardware_classes: ['cpu', 'gpu16'],
		version: '0.1.0',
		current_job_id: null,
		last_seen_at: '2026-01-01T00:00:00Z',
		created_at: '2026-01-01T00:00:00Z',
		revoked_at: null,
		...over
	};
}

const alice = { user: 'alice', admin: false };
const operator = { user: 'op', admin: true };

describe('canRevoke', () => {
	it('lets users revoke their own private workers only', () => {
		expect(canRevoke(makeWorker(), alice)).toBe(true);
		expect(canRevoke(makeWorker({ owner_id: 'bob' }), alice)).toBe(false);
		expect(canRevoke(makeWorker({ pool: 'shared', owner_id: null }), alice)).toBe(false);
		// Another user's worker is listed to admins only, with its owner; a user sees owner null.
		expect(canRevoke(makeWorker({ owner_id: null }), alice)).toBe(false);
		expect(canRevoke(makeWorker(), { user: null, admin: false })).toBe(false);
	});

	it('lets admins revoke any worker, and nobody a revoked one', () => {
		expect(canRevoke(makeWorker({ pool: 'shared', owner_id: null }), operator)).toBe(true);
		expect(canRevoke(makeWorker({ owner_id: 'bob' }), operator)).toBe(true);
		expect(canRevoke(makeWorker({ status: 'revoked' }), alice)).toBe(false);
		expect(canRevoke(makeWorker({ pool: 'shared', status: 'revoked' }), operator)).toBe(false);
	});
});

describe('groupWorkers', () => {
	it("puts the user's own first, then the shared pool, then other users' (admins)", () => {
		const list = [
			makeWorker({ id: 'shared-1', pool: 'shared', owner_id: null }),
			makeWorker({ id: 'bob-1', owner_id: 'bob' }),
			makeWorker({ id: 'mine-1' })
		];
		const groups = groupWorkers(list, 'alice');
		expect(groups.map((g) => [g.key, g.workers.map((w) => w.id)])).toEqual([
			['mine', ['mine-1']],
			['shared', ['shared-1']],
			['others', ['bob-1']]
		]);
	});

	it('keeps an empty group of your own (it says how to add one) and drops other empty groups', () => {
		const groups = groupWorkers([makeWorker({ pool: 'shared', owner_id: null })], 'alice');
		expect(groups.map((g) => g.key)).toEqual(['mine', 'shared']);
		expect(groupWorkers([], 'alice').map((g) => g.key)).toEqual(['mine']);
	});

	it('lists online workers first and revoked ones last, otherwise newest first as given', () => {
		const list = [
			makeWorker({ id: 'a', status: 'revoked' }),
			makeWorker({ id: 'b', status: 'offline' }),
			makeWorker({ id: 'c', status: 'idle' }),
			makeWorker({ id: 'd', status: 'busy' }),
			makeWorker({ id: 'e', status: 'idle' })
		];
		expect(groupWorkers(list, 'alice')[0]!.workers.map((w) => w.id)).toEqual(['d', 'c', 'e', 'b', 'a']);
	});
});

describe('facts', () => {
	it('says what a worker serves, where, and when it was last seen', () => {
		expect(servesText(makeWorker())).toBe('Sentence embedding, Text classifier');
		expect(servesText(makeWorker({ job_types: null }))).toBe('Not reported yet');
		expect(providerText(makeWorker())).toBe('Google Colab');
		expect(providerText(makeWorker({ provider: null }))).toBe('Not reported yet');
		const now = Date.parse('2026-01-01T00:05:00Z');
		expect(lastSeenText(makeWorker(), now)).toBe('5 minutes ago');
		expect(lastSeenText(makeWorker({ last_seen_at: null }), now)).toBe('Never');
	});

	it('counts the workers of your own that are not revoked', () => {
		const list = [
			makeWorker({ id: '1' }),
			makeWorker({ id: '2', status: 'revoked' }),
			makeWorker({ id: '3', status: 'offline' }),
			makeWorker({ id: '4', pool: 'shared', owner_id: null }),
			makeWorker({ id: '5', owner_id: 'bob' })
		];
		expect(ownWorkerCount(list, 'alice')).toBe(2);
		expect(ownWorkerCount(list, 'carol')).toBe(0);
		expect(ownWorkerCount(list, null)).toBe(0);
	});
});

describe('workerNameProblem', () => {
	it('accepts what job-api accepts (1-100 printable characters)', () => {
		expect(workerNameProblem('my-colab-t4')).toBeNull();
		expect(workerNameProblem('  lab box #2 ')).toBeNull();
		expect(workerNameProblem('x'.repeat(100))).toBeNull();
	});

	it('explains what it refuses', () => {
		expect(workerNameProblem('')).toMatch(/Name the worker/);
		expect(workerNameProblem('   ')).toMatch(/Name the worker/);
		expect(workerNameProblem('x'.repeat(101))).toMatch(/at most 100/);
		expect(workerNameProblem('tab\there')).toMatch(/printable/);
		expect(workerNameProblem('del\u007f')).toMatch(/printable/);
	});
});

describe('runOnWarning', () => {
	it('warns about My workers and Either only when the user has none of their own', () => {
		expect(runOnWarning('shared', 0)).toBeNull();
		expect(runOnWarning('private', 1)).toBeNull();
		expect(runOnWarning('any', 2)).toBeNull();
		expect(runOnWarning('private', null)).toBeNull();
		expect(runOnWarning('private', 0)).toMatch(/no worker of your own/);
		expect(runOnWarning('any', 0)).toMatch(/only a shared worker/);
	});
});
