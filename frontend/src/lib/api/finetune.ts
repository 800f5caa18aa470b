// job-api: jobs, the base-model catalogue, history and live streams (the brief's F1).
import { ApiError, type ApiClient } from './client';
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

export interface CreateJobOptions {
	/** How often a 409 `dataset_not_ready` is sent again before its error is shown (default 5). */
	notReadyRetries?: number;
	/** For tests: waits `ms` milliseconds. */
	sleep?: (ms: number) => Promise<void>;
}

/** The wait a 409 `dataset_not_ready` asks for (its details' `retry_after`, seconds), bounded. */
function retryAfterMs(details: unknown): number {
	const seconds =
		typeof details === 'object' && details !== null
			? (details as Record<string, unknown>).retry_after
			: undefined;
	return typeof seconds === 'number' && Number.isFinite(seconds)
		? Math.min(Math.max(seconds, 0.1), 10) * 1000
		: 1000;
}

/**
 * POST /api/finetune/jobs. job-api learns of an upload from data-service's event, milliseconds
 * after the upload's answer: a job sent in between is refused with 409 `dataset_not_ready`
 * (nothing created), so it is sent again after the delay the answer names, a few times.
 */
export async function createJob(
	api: ApiClient,
	body: FinetuneJobCreate,
	options: CreateJobOptions = {}
): Promise<FinetuneJob> {
	const retries = options.notReadyRetries ?? 5;
	const sleep = options.sleep ?? ((ms: number) => new Promise<void>((done) => setTimeout(done, ms)));
	for (let attempt = 0; ; attempt++) {
		try {
			return await api.data<FinetuneJob>('/api/finetune/jobs', { method: 'POST', body });
		} catch (e) {
			if (!(e instanceof ApiError) || e.code !== 'dataset_not_ready' || attempt >= retries) throw e;
			await sleep(retryAfterMs(e.details));
		}
	}
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
