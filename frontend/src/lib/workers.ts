// What the Workers page and the create-job form say about workers: who may revoke one, how its
// facts read, how the list is grouped, and the "Run on" choice of a job. Pure functions.
import {
	JOB_TYPE_LABEL,
	PROVIDER_LABEL,
	type Worker,
	type WorkerPool,
	type WorkerStatus
} from '$lib/api/types';
import { relativeTime } from '$lib/format';

export interface Viewer {
	user: string | null;
	admin: boolean;
}

/** Whether the viewer may revoke a worker: admins any, a user their own private workers. */
export function canRevoke(worker: Worker, viewer: Viewer): boolean {
	if (worker.status === 'revoked') return false;
	return viewer.admin || (worker.pool === 'private' && !!viewer.user && worker.owner_id === viewer.user);
}

export function isOwn(worker: Worker, user: string | null): boolean {
	return worker.pool === 'private' && !!user && worker.owner_id === user;
}

/** How many of the user's own workers are enrolled and not revoked. */
export function ownWorkerCount(workers: readonly Worker[], user: string | null): number {
	return workers.filter((w) => isOwn(w, user) && w.status !== 'revoked').length;
}

export function servesText(worker: Worker): string {
	if (!worker.job_types) return 'Not reported yet';
	if (worker.job_types.length === 0) return 'Nothing';
	return worker.job_types.map((t) => JOB_TYPE_LABEL[t] ?? t).join(', ');
}

export function providerText(worker: Worker): string {
	return worker.provider ? (PROVIDER_LABEL[worker.provider] ?? worker.provider) : 'Not reported yet';
}

export function lastSeenText(worker: Worker, now = Date.now()): string {
	return worker.last_seen_at ? relativeTime(worker.last_seen_at, now) : 'Never';
}

export const WORKER_STATUS_TEXT: Record<WorkerStatus, string> = {
	idle: 'Online, waiting for a job.',
	busy: 'Online, training a job.',
	offline: 'No heartbeat lately: not running, or not reachable.',
	revoked: 'Its token no longer works.'
};

const STATUS_ORDER: Record<WorkerStatus, number> = { busy: 0, idle: 1, offline: 2, revoked: 3 };

export interface WorkerGroup {
	key: 'mine' | 'shared' | 'others';
	title: string;
	workers: Worker[];
}

/** The user's own workers, the shared pool, and (for admins) other users' private workers;
 * online ones first, revoked ones last, otherwise in the order given (newest first). */
export function groupWorkers(workers: readonly Worker[], user: string | null): WorkerGroup[] {
	const sorted = workers
		.map((w, i) => ({ w, i }))
		.sort((a, b) => STATUS_ORDER[a.w.status] - STATUS_ORDER[b.w.status] || a.i - b.i)
		.map(({ w }) => w);
	const groups: WorkerGroup[] = [
		{ key: 'mine', title: 'Your workers', workers: sorted.filter((w) => isOwn(w, user)) },
		{ key: 'shared', title: 'Shared pool', workers: sorted.filter((w) => w.pool === 'shared') },
		{
			key: 'others',
			title: "Other users' workers",
			workers: sorted.filter((w) => w.pool === 'private' && !isOwn(w, user))
		}
	];
	return groups.filter((g) => g.key === 'mine' || g.workers.length > 0);
}

/** Why a worker name would be refused (job-api: 1-100 printable characters), or null. */
export function workerNameProblem(name: string): string | null {
	const text = name.trim();
	if (!text) return 'Name the worker, for example my-colab-t4.';
	if (text.length > 100) return 'The name is too long (at most 100 characters).';
	if (/[\u0000-\u001f\u007f]/.test(text)) return 'Use printable characters only.';
	return null;
}

export const RUN_ON: readonly { value: WorkerPool; label: string; hint: string }[] = [
	{ value: 'shared', label: 'Shared workers', hint: "The platform's workers of the GPU provider you pick." },
	{
		value: 'private',
		label: 'My workers',
		hint: 'Only workers you added (your Colab, your own machine), whatever their provider.'
	},
	{ value: 'any', label: 'Either', hint: 'Whichever takes it first: a shared worker or one of yours.' }
];

/** What the form says about a "Run on" choice given how many workers of their own the user has
 * (null: not known), or null when there is nothing to add. */
export function runOnWarning(pool: WorkerPool, ownWorkers: number | null): string | null {
	if (pool === 'shared' || ownWorkers === null || ownWorkers > 0) return null;
	return pool === 'private'
		? 'You have no worker of your own yet: add one first, or the job has nothing to run on.'
		: 'You have no worker of your own yet, so only a shared worker can take this job.';
}
