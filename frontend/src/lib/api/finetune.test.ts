import { describe, expect, it, vi } from 'vitest';
import { ApiClient } from './client';
import { createJob } from './finetune';
import type { FinetuneJobCreate } from './types';

const body: FinetuneJobCreate = {
	job_type: 'embedding',
	base_model: 'intfloat/multilingual-e5-base',
	training_data_url: 'ftd://datasets/7b0c0000-0000-0000-0000-000000000001',
	output_model: 'alice/support-embed',
	gpu_provider: 'local',
	worker_pool: 'shared'
};

const notReady = () =>
	new Response(
		JSON.stringify({
			error: {
				code: 'dataset_not_ready',
				message: 'Dataset 7b0c... is not known here yet.',
				details: { field: 'training_data_url', retry_after: 1 }
			}
		}),
		{ status: 409, headers: { 'Retry-After': '1' } }
	);
const created = () =>
	new Response(JSON.stringify({ data: { id: 'j1', status: 'pending' } }), { status: 201 });

function client(...answers: (() => Response)[]) {
	const fetcher = vi.fn(async (_u: RequestInfo | URL, _i?: RequestInit) => {
		const next = answers.shift();
		if (!next) throw new Error('no more answers');
		return next();
	});
	return { api: new ApiClient('', () => 't', fetcher), fetcher };
}

describe('createJob', () => {
	it('sends a job refused as dataset_not_ready again after the delay it names', async () => {
		const { api, fetcher } = client(notReady, notReady, created);
		const sleep = vi.fn(async (_ms: number) => {});
		const job = await createJob(api, body, { sleep });
		expect(job.id).toBe('j1');
		expect(fetcher).toHaveBeenCalledTimes(3);
		expect(sleep.mock.calls.map(([ms]) => ms)).toEqual([1000, 1000]);
		for (const [, init] of fetcher.mock.calls) {
			expect(init?.method).toBe('POST');
			expect(JSON.parse(String(init?.body))).toEqual(body);
		}
	});

	it('shows the error once the retries are spent, and never retries other errors', async () => {
		const sleep = vi.fn(async (_ms: number) => {});
		const spent = client(notReady, notReady, notReady);
		await expect(createJob(spent.api, body, { sleep, notReadyRetries: 2 })).rejects.toMatchObject({
			status: 409,
			code: 'dataset_not_ready'
		});
		expect(spent.fetcher).toHaveBeenCalledTimes(3);

		const gone = client(
			() =>
				new Response(
					JSON.stringify({
						error: { code: 'dataset_not_found', message: 'No dataset x is available to you.', details: null }
					}),
					{ status: 404 }
				)
		);
		sleep.mockClear();
		await expect(createJob(gone.api, body, { sleep })).rejects.toMatchObject({ code: 'dataset_not_found' });
		expect(gone.fetcher).toHaveBeenCalledTimes(1);
		expect(sleep).not.toHaveBeenCalled();
	});
});
