import { describe, expect, it, vi } from 'vitest';
import { ApiClient, ApiError, buildUrl, errorFrom } from './client';
import * as finetune from './finetune';

function fakeFetch(status: number, body: unknown) {
	return vi.fn(
		async (_url: RequestInfo | URL, _init?: RequestInit) =>
			new Response(body === undefined ? '' : JSON.stringify(body), {
				status,
				headers: { 'Content-Type': 'application/json' }
			})
	);
}

describe('ApiClient', () => {
	it('sends the bearer token and unwraps {data}', async () => {
		const fetcher = fakeFetch(200, { data: { id: 'j1' } });
		const api = new ApiClient('http://api', () => 'tok', fetcher);
		expect(await api.data('/api/finetune/jobs/j1')).toEqual({ id: 'j1' });
		const [url, init] = fetcher.mock.calls[0]!;
		expect(url).toBe('http://api/api/finetune/jobs/j1');
		expect((init?.headers as Record<string, string>).Authorization).toBe('Bearer tok');
	});

	it('sends no Authorization header without a token', async () => {
		const fetcher = fakeFetch(200, { data: [] });
		await new ApiClient('', () => null, fetcher).data('/x');
		expect((fetcher.mock.calls[0]![1]?.headers as Record<string, string>).Authorization).toBeUndefined();
	});

	it('turns the error envelope into an ApiError with field errors', async () => {
		const body = {
			error: {
				code: 'validation_error',
				message: 'Request validation failed: hyperparameters.epochs: too big',
				details: [
					{
						loc: ['body', 'hyperparameters', 'epochs'],
						message: 'Input should be less than or equal to 100',
						type: 'x'
					}
				]
			}
		};
		const api = new ApiClient('', () => 't', fakeFetch(422, body));
		const error = await api.data('/x', { method: 'POST', body: {} }).catch((e: unknown) => e);
		expect(error).toBeInstanceOf(ApiError);
		const e = error as ApiError;
		expect(e.status).toBe(422);
		expect(e.code).toBe('validation_error');
		expect(e.fieldErrors()).toEqual([
			{ field: 'hyperparameters.epochs', message: 'Input should be less than or equal to 100' }
		]);
	});

	it("reads job-api's domain error with a field", () => {
		const e = errorFrom(422, {
			error: {
				code: 'invalid_output_model',
				message: 'output_model must be…',
				details: { field: 'output_model' }
			}
		});
		expect(e.fieldErrors()).toEqual([{ field: 'output_model', message: 'output_model must be…' }]);
	});

	it('explains bodies that are not the envelope', () => {
		expect(errorFrom(502, null).message).toMatch(/not reachable/);
		expect(errorFrom(418, 'teapot', "I'm a teapot").message).toBe("I'm a teapot");
		expect(errorFrom(400, { detail: 'Bad thing' }).message).toBe('Bad thing');
	});

	it('tells the session when the token is refused', async () => {
		const onUnauthorized = vi.fn();
		const api = new ApiClient(
			'',
			() => 't',
			fakeFetch(401, { error: { code: 'unauthorized', message: 'Token expired.', details: null } }),
			onUnauthorized
		);
		await expect(api.data('/x')).rejects.toThrow('Token expired.');
		expect(onUnauthorized).toHaveBeenCalledOnce();
	});

	it('reports a network failure readably', async () => {
		const api = new ApiClient(
			'',
			() => 't',
			vi.fn(async () => Promise.reject(new TypeError('fetch failed')))
		);
		await expect(api.data('/x')).rejects.toMatchObject({ code: 'network_error' });
	});

	it('builds query strings without empty values', () => {
		expect(
			buildUrl('', '/a', {
				status: 'running',
				job_type: null,
				cursor: undefined,
				limit: 5,
				kind: ['progress', 'status']
			})
		).toBe('/a?status=running&limit=5&kind=progress&kind=status');
	});
});

describe('finetune routes', () => {
	it('lists jobs with filters and keeps the paging fields', async () => {
		const fetcher = fakeFetch(200, { data: [{ id: 'a' }], next_cursor: 'c2', limit: 50 });
		const page = await finetune.listJobs(new ApiClient('', () => 't', fetcher), {
			status: 'pending',
			job_type: 'classifier'
		});
		expect(page.next_cursor).toBe('c2');
		expect(String(fetcher.mock.calls[0]![0])).toBe(
			'/api/finetune/jobs?status=pending&job_type=classifier&limit=50'
		);
	});

	it('cancels with DELETE', async () => {
		const fetcher = fakeFetch(200, { data: { id: 'a', status: 'cancelled' } });
		await finetune.cancelJob(new ApiClient('', () => 't', fetcher), 'a');
		expect(fetcher.mock.calls[0]![1]?.method).toBe('DELETE');
	});

	it('follows the history cursor to the end', async () => {
		const pages = [
			{ data: [{ id: 1 }, { id: 2 }], next_cursor: 'n1', limit: 2 },
			{ data: [{ id: 3 }], next_cursor: null, limit: 2 }
		];
		const fetcher = vi.fn(
			async (_u: RequestInfo | URL, _i?: RequestInit) =>
				new Response(JSON.stringify(pages.shift()), { status: 200 })
		);
		const events = await finetune.allJobEvents(new ApiClient('', () => 't', fetcher), 'j');
		expect(events.map((e) => e.id)).toEqual([1, 2, 3]);
		expect(String(fetcher.mock.calls[1]![0])).toContain('cursor=n1');
	});
});
