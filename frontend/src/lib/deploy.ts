// Deploying from a job: the registry registers the model when job-api publishes model.completed,
// so the job's model is found by its job id.
import { api, models } from '$lib/api';
import type { RegisteredModel } from '$lib/api/models';

export async function modelOfJob(jobId: string): Promise<RegisteredModel | null> {
	let cursor: string | null = null;
	do {
		const page: Awaited<ReturnType<typeof models.listModels>> = await models.listModels(api, {
			cursor,
			limit: 100
		});
		const found = page.data.find((m) => m.job_id === jobId);
		if (found) return found;
		cursor = page.next_cursor;
	} while (cursor);
	return null;
}

/** Deploys the model a job produced; a readable error when there is none (yet). */
export async function deployJobModel(jobId: string): Promise<RegisteredModel> {
	const model = await modelOfJob(jobId);
	if (!model) {
		throw new Error(
			'The registry has no model for this job yet; it appears shortly after the job completes.'
		);
	}
	if (model.status === 'deployed') return model;
	return models.deployModel(api, model.id);
}
