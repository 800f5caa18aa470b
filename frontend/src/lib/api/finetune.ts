// job-api: jobs, the base-model catalogue, history and live streams (the brief's F1).
import type { ApiClient } from './client';
import type {
	BaseModelsByType,
	FinetuneJob,
	FinetuneJobCreate,
	GPUProvider,
	JobEvent,
	JobStatus,
	JobType,
	Page
} from './types';

export interface JobFilter {
	status?: JobStatus | null;
	job_type?: JobType | null;
	gpu_provider?: GPUProvider | null;
	project?: string | null;
	limit?: number;
	cursor?: string | null;
}

export function listBaseModels(api: ApiClient, signal?: AbortSignal): Promise<BaseModelsByType[]> {
	return api.data<BaseModelsByType[]>('/api/finetune/base-models', { signal });
}

export function createJob(api: ApiClient, body: FinetuneJobCreate): Promise<FinetuneJob> {
	return api.data<FinetuneJob>('/api/finetune/jobs', { method: 'POST', body });
}

export function listJobs(
	api: ApiClient,
	filter: JobFilter = {},
	signal?: AbortSignal
): Promise<Page<FinetuneJob>> {
	return api.raw<Page<FinetuneJob>>('/api/finetune/jobs', {
		query: { ...filter, limit: filter.limit ?? 50 },
		signal
	});
}

export function getJob(api: ApiClient, id: string, signal?: AbortSignal): Promise<FinetuneJob> {
	return api.data<FinetuneJob>(`/api/finetune/jobs/${encodeURIComponent(id)}`, { signal });
}

/** Cancels a pending or running job (DELETE; the job stays, as `cancelled`). */
export function cancelJob(api: ApiClient, id: string): Promise<FinetuneJob> {
	return api.data<FinetuneJob>(`/api/finetune/jobs/${encodeURIComponent(id)}`, {
		method: 'DELETE'
	});
}

export function jobEventsPage(
	api: ApiClient,
	id: string,
	cursor: string | null,
	signal?: AbortSignal,
	limit = 200
): Promise<Page<JobEvent>> {
	return api.raw<Page<JobEvent>>(`/api/finetune/jobs/${encodeURIComponent(id)}/events`, {
		query: { limit, cursor },
		signal
	});
}

/** The whole history of a job, oldest first, following the cursor (capped at `maxEvents`). */
export async function allJobEvents(
	api: ApiClient,
	id: string,
	signal?: AbortSignal,
	maxEvents = 20000
): Promise<JobEvent[]> {
	const events: JobEvent[] = [];
	let cursor: string | null = null;
	do {
		const page: Page<JobEvent> = await jobEventsPage(api, id, cursor, signal);
		events.push(...page.data);
		cursor = page.next_cursor;
	} while (cursor && events.length < maxEvents);
	return events;
}

export const jobStreamPath = (id: string) => `/api/finetune/jobs/${encodeURIComponent(id)}/stream`;
export const jobsStreamPath = '/api/finetune/jobs/stream';
