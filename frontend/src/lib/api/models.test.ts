import { describe, expect, it, vi } from 'vitest';
import { ApiClient } from './client';
import { deleteModel, listModels, normalizeModel, parseServingConfig, type ModelResponse } from './models';

const registryModel = {
	id: '7b0c0000-0000-0000-0000-000000000001',
	user_id: 'alice',
	name: 'alice/support-embed',
	version: 2,
	job_id: 'a1',
	attempt: 1,
	job_type: 'embedding',
	base_model: 'sentence-transformers/all-MiniLM-L6-v2',
	repo_id: 'alice/support-embed',
	revision: '3f2a',
	store: 'local',
	uri: 'local://alice/support-embed@3f2a',
	metrics: { cosine_accuracy: 0.9 },
	baseline_metrics: { cosine_accuracy: 0.7 },
	status: 'deployed',
	created_at: '2026-01-01T00:00:00Z',
	registered_at: '2026-01-01T00:00:01Z',
	deployed_at: '2026-01-01T00:01:00Z',
	created_repo: true,
	data_stats: {},
	dataset_id: null,
	hyperparameters: {},
	project_id: null,
	retired_at: null,
	updated_at: '2026-01-01T00:01:00Z'
} satisfies ModelResponse;

describe('registry models', () => {
	it("reads the registry's model", () => {
		expect(normalizeModel(registryModel)).toMatchObject({
			name: 'alice/support-embed',
			version: 2,
			status: 'deployed',
			path: 'local://alice/support-embed@3f2a',
			repo_id: 'alice/support-embed',
			job_id: 'a1',
			metrics: { cosine_accuracy: 0.9 },
			baseline_metrics: { cosine_accuracy: 0.7 }
		});
	});

	it('filters by `type` and asks for the Hub repo only when told', async () => {
		const fetcher = vi.fn(
			async (_u: RequestInfo | URL, _i?: RequestInit) =>
				new Response(JSON.stringify({ data: [registryModel], next_cursor: null, limit: 100 }), {
					status: 200
				})
		);
		const api = new ApiClient('', () => 't', fetcher);
		await listModels(api, { job_type: 'classifier', status: 'deployed' });
		expect(String(fetcher.mock.calls[0]![0])).toBe('/api/models?status=deployed&type=classifier&limit=100');
		await deleteModel(api, 'm1');
		expect(String(fetcher.mock.calls[1]![0])).toBe('/api/models/m1');
		await deleteModel(api, 'm1', true);
		expect(String(fetcher.mock.calls[2]![0])).toBe('/api/models/m1?delete_repo=true');
	});

	it('finds where each deployed model is served in the LiteLLM config', () => {
		const config = parseServingConfig({
			data: {
				model_list: [
					{
						model_name: 'alice/support-embed',
						litellm_params: {
							model: 'openai/alice/support-embed',
							api_base: 'http://localhost:8005/v1',
							api_key: 'os.environ/FTD_SERVE_API_KEY'
						},
						model_info: { id: registryModel.id, mode: 'embedding' }
					},
					{
						model_name: 'alice/lora',
						litellm_params: { api_base: 'http://localhost:8010/v1', api_key: 'EMPTY' },
						model_info: { id: 'x' }
					}
				],
				general_settings: {
					pass_through_endpoints: [
						{
							path: '/ftd-serve/v1/classify',
							target: 'http://localhost:8005/v1/classify',
							headers: { Authorization: 'Bearer os.environ/FTD_SERVE_API_KEY' }
						}
					]
				}
			}
		});
		expect(config.models).toEqual([
			{
				model_name: 'alice/support-embed',
				model_id: registryModel.id,
				api_base: 'http://localhost:8005/v1',
				api_key_env: 'FTD_SERVE_API_KEY'
			},
			{ model_name: 'alice/lora', model_id: 'x', api_base: 'http://localhost:8010/v1', api_key_env: null }
		]);
		expect(config.classify_base).toBe('http://localhost:8005/v1');
		expect(config.classify_key_env).toBe('FTD_SERVE_API_KEY');
		expect(parseServingConfig({ data: { model_list: [] } })).toEqual({
			models: [],
			classify_base: null,
			classify_key_env: null
		});
	});
});
