// job-api: enrolled workers (the shared pool and the user's own), enrolment and revocation.
import type { ApiClient } from './client';
import type { EnrolledWorker, Worker, WorkerCreate } from './types';

export interface WorkerFilter {
	pool?: 'shared' | 'private' | null;
	include_revoked?: boolean;
}

/** The workers the caller can see: the shared pool and their own (admins: all), newest first. */
export function listWorkers(
	api: ApiClient,
	filter: WorkerFilter = {},
	signal?: AbortSignal
): Promise<Worker[]> {
	return api.data<Worker[]>('/api/workers', {
		query: { pool: filter.pool, include_revoked: filter.include_revoked ? true : undefined },
		signal
	});
}

/** Enrolls a worker: the answer holds its token and setup, shown this once. */
export function enrollWorker(api: ApiClient, body: WorkerCreate): Promise<EnrolledWorker> {
	return api.data<EnrolledWorker>('/api/workers', { method: 'POST', body });
}

/** Revokes a worker: its token stops working and the job it ran goes back to the queue. */
export function revokeWorker(api: ApiClient, id: string): Promise<Worker> {
	return api.data<Worker>(`/api/workers/${encodeURIComponent(id)}`, { method: 'DELETE' });
}
