// The create form's estimate: job-api's dry run (POST /api/finetune/jobs?dry_run=true, nothing
// created) for the data, model and hyperparameters picked so far, and how the form shows it.
import { ApiError, type ApiClient } from '$lib/api/client';
import type { components } from '$lib/api/generated/job-api';
import type { FinetuneJobCreate } from '$lib/api/types';

type JobApi = components['schemas'];
export type JobEstimate = JobApi['JobEstimateResponse'];
export type WorkerKindEstimate = JobApi['WorkerKindEstimate'];

/** Milliseconds the form waits after the last change before it asks (typing stays quiet). */
export const ESTIMATE_DEBOUNCE_MS = 500;

export function fetchEstimate(
	api: ApiClient,
	body: FinetuneJobCreate,
	signal?: AbortSignal
): Promise<JobEstimate> {
	return api.data<JobEstimate>('/api/finetune/jobs', {
		method: 'POST',
		query: { dry_run: true },
		body,
		signal
	});
}

/** A stable text of a request body: the form asks again only when it changes. */
export function estimateKey(body: FinetuneJobCreate | null): string {
	if (body === null) return '';
	const sorted = (value: unknown): unknown =>
		value && typeof value === 'object' && !Array.isArray(value)
			? Object.fromEntries(
					Object.keys(value as Record<string, unknown>)
						.sort()
						.map((k) => [k, sorted((value as Record<string, unknown>)[k])])
				)
			: value;
	return JSON.stringify(sorted(body));
}

/** `45 s`, `12 min`, `3 h 20 min`, `2 d 4 h`; `unknown` without a figure. */
export function estimateDuration(seconds: number | null | undefined): string {
	if (seconds === null || seconds === undefined || !Number.isFinite(seconds) || seconds < 0) return 'unknown';
	if (seconds < 60) return `${Math.max(1, Math.round(seconds))} s`;
	let minutes = Math.round(seconds / 60);
	if (minutes < 60) return `${minutes} min`;
	let hours = Math.floor(minutes / 60);
	minutes -= hours * 60;
	if (hours < 48) return minutes ? `${hours} h ${minutes} min` : `${hours} h`;
	const days = Math.floor(hours / 24);
	hours -= days * 24;
	return hours ? `${days} d ${hours} h` : `${days} d`;
}

const KIND_LABEL: Record<string, string> = {
	cpu: 'CPU',
	gpu: 'GPU (typical)',
	unknown: 'Unknown hardware'
};

export interface EstimateRow {
	kind: string;
	label: string;
	online: string;
	time: string;
	basis: string;
	/** More than an hour on this kind. */
	slow: boolean;
}

/** One table row per worker kind, as the form shows them. */
export function estimateRows(estimate: JobEstimate): EstimateRow[] {
	return estimate.estimates.map((e) => ({
		kind: e.worker_kind,
		label: KIND_LABEL[e.worker_kind] ?? e.worker_kind,
		online: e.workers_online === 0 ? 'none online' : `${e.workers_online} online`,
		time: estimateDuration(e.seconds),
		basis:
			e.basis === 'measured'
				? `measured on ${e.sample_count} earlier job${e.sample_count === 1 ? '' : 's'}`
				: 'typical speed (no jobs measured yet)',
		slow: e.seconds !== null && e.seconds > 3600
	}));
}

/** The headline: `171 steps (900 training rows, 3 epochs, batch 16)`. */
export function estimateSummary(estimate: JobEstimate): string {
	if (estimate.steps === null || estimate.train_rows === null) {
		return `${estimate.epochs} epoch${estimate.epochs === 1 ? '' : 's'}, batch ${estimate.batch_size}; the number of steps is known once the data is uploaded.`;
	}
	const rows = estimate.train_rows.toLocaleString('en-US');
	const epochs = `${estimate.epochs} epoch${estimate.epochs === 1 ? '' : 's'}`;
	return `${estimate.steps.toLocaleString('en-US')} steps (${rows} training rows, ${epochs}, batch ${estimate.batch_size})`;
}

/** Why there is no estimate, in a sentence (a dry run refused with the create's error). */
export function estimateProblem(error: unknown): string {
	if (error instanceof ApiError) {
		if (error.code === 'dataset_not_ready')
			return 'The upload is still being registered; the estimate follows.';
		return `No estimate: ${error.message}`;
	}
	return 'No estimate right now.';
}
