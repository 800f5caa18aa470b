import { describe, expect, it } from 'vitest';
import { ApiClient, ApiError } from '$lib/api/client';
import {
	estimateDuration,
	estimateKey,
	estimateProblem,
	estimateRows,
	estimateSummary,
	fetchEstimate,
	type JobEstimate
} from './estimate';
import type { FinetuneJobCreate } from '$lib/api/types';

function estimate(overrides: Partial<JobEstimate> = {}): JobEstimate {
	return {
		dry_run: true,
		job_type: 'embedding',
		base_model: 'sentence-transformers/all-MiniLM-L6-v2',
		epochs: 3,
		batch_size: 16,
		train_rows: 900,
		eval_rows: 100,
		train_tokens: 45000,
		steps_per_epoch: 57,
		steps: 171,
		estimates: [
			{
				worker_kind: 'Tesla T4',
				workers_online: 1,
				seconds: 300,
				basis: 'measured',
				sample_count: 4,
				samples_per_second: 9,
				tokens_per_second: null
			},
			{
				worker_kind: 'cpu',
				workers_online: 2,
				seconds: 12000,
				basis: 'prior',
				sample_count: 0,
				samples_per_second: 0.2,
				tokens_per_second: null
			}
		],
		warnings: [],
		...overrides
	};
}

const body: FinetuneJobCreate = {
	job_type: 'embedding',
	base_model: 'intfloat/multilingual-e5-base',
	training_data_url: 'ftd://datasets/1',
	output_model: 'alice/m',
	gpu_provider: 'local',
	worker_pool: 'shared',
	project_id: null,
	hyperparameters: { epochs: 2, batch_size: 8 }
};

describe('estimateDuration', () => {
	it.each([
		[0.2, '1 s'],
		[45, '45 s'],
		[600, '10 min'],
		[3600, '1 h'],
		[12000, '3 h 20 min'],
		[190000, '2 d 4 h'],
		[172800, '2 d'],
		[null, 'unknown'],
		[Number.NaN, 'unknown']
	])('%s seconds read as %s', (seconds, text) => {
		expect(estimateDuration(seconds)).toBe(text);
	});
});

describe('estimateRows', () => {
	it('shows each kind with its workers, time and where the speed comes from', () => {
		const rows = estimateRows(estimate());
		expect(rows).toEqual([
			{
				kind: 'Tesla T4',
				label: 'Tesla T4',
				online: '1 online',
				time: '5 min',
				basis: 'measured on 4 earlier jobs',
				slow: false
			},
			{
				kind: 'cpu',
				label: 'CPU',
				online: '2 online',
				time: '3 h 20 min',
				basis: 'typical speed (no jobs measured yet)',
				slow: true
			}
		]);
	});

	it('says when nobody of a kind is online and when the time is unknown', () => {
		const rows = estimateRows(
			estimate({
				estimates: [
					{
						worker_kind: 'gpu',
						workers_online: 0,
						seconds: null,
						basis: 'measured',
						sample_count: 1,
						samples_per_second: 1,
						tokens_per_second: null
					}
				]
			})
		);
		expect(rows).toEqual([
			{
				kind: 'gpu',
				label: 'GPU (typical)',
				online: 'none online',
				time: 'unknown',
				basis: 'measured on 1 earlier job',
				slow: false
			}
		]);
	});
});

describe('estimateSummary', () => {
	it('counts steps, rows, epochs and the batch', () => {
		expect(estimateSummary(estimate({ steps: 1710, train_rows: 9000 }))).toBe(
			'1,710 steps (9,000 training rows, 3 epochs, batch 16)'
		);
	});

	it('says the steps come with the upload when the size is unknown', () => {
		expect(estimateSummary(estimate({ steps: null, train_rows: null, epochs: 1 }))).toBe(
			'1 epoch, batch 16; the number of steps is known once the data is uploaded.'
		);
	});
});

describe('estimateKey', () => {
	it('ignores the order of keys and changes with any value', () => {
		const reordered = { ...body, hyperparameters: { batch_size: 8, epochs: 2 } };
		expect(estimateKey(reordered)).toBe(estimateKey(body));
		expect(estimateKey({ ...body, hyperparameters: { epochs: 3, batch_size: 8 } })).not.toBe(
			estimateKey(body)
		);
		expect(estimateKey(null)).toBe('');
	});
});

describe('fetchEstimate', () => {
	it('posts the body to the create route as a dry run and unwraps the answer', async () => {
		const seen: { url: string; method: string; body: unknown }[] = [];
		const fetcher = (async (url: string, init: RequestInit) => {
			seen.push({ url, method: init.method ?? 'GET', body: JSON.parse(String(init.body)) });
			return new Response(JSON.stringify({ data: estimate() }), { status: 200 });
		}) as unknown as typeof fetch;
		const client = new ApiClient('http://x', () => 'token', fetcher);
		const got = await fetchEstimate(client, body);
		expect(got.steps).toBe(171);
		expect(seen).toEqual([{ url: 'http://x/api/finetune/jobs?dry_run=true', method: 'POST', body }]);
	});

	it("raises the create's error for a request a create would refuse", async () => {
		const fetcher = (async () =>
			new Response(JSON.stringify({ error: { code: 'unknown_base_model', message: 'No such model.' } }), {
				status: 422
			})) as unknown as typeof fetch;
		const client = new ApiClient('http://x', () => 'token', fetcher);
		const error = await fetchEstimate(client, body).catch((e: unknown) => e);
		expect(error).toBeInstanceOf(ApiError);
		expect(estimateProblem(error)).toBe('No estimate: No such model.');
		expect(estimateProblem(new ApiError(409, 'dataset_not_ready', 'wait'))).toMatch(/still being registered/);
	});
});
