// registry-service: trained models, deploy/undeploy, delete, LiteLLM config (issue 8).
//
// Written from issue 8's text while registry-service's OpenAPI document is not committed; read
// tolerantly (normalizeModel). When docs/openapi/registry-service.json lands these become aliases
// of the generated types.
import { ApiError, type ApiClient } from './client';
import type { JobType, Page } from './types';

export type ModelStatus = 'registered' | 'deployed' | 'retired';

export interface RegisteredModel {
	id: string;
	/** `owner/name` (the job's output_model). */
	name: string;
	version: number | null;
	job_type: JobType | null;
	base_model: string | null;
	status: ModelStatus;
	/** Hub repo id or local store path, as registered. */
	path: string;
	revision: string | null;
	store: string | null;
	uri: string | null;
	job_id: string | null;
	metrics: Record<string, number>;
	baseline_metrics: Record<string, number>;
	created_at: string | null;
	deployed_at: string | null;
	/** Where the served model answers (OpenAI-compatible base URL), when the registry says. */
	endpoint: string | null;
	/** The name to send as `model` to the served endpoint. */
	served_name: string | null;
}

type Raw = Record<string, unknown>;
const isObj = (v: unknown): v is Raw => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown): string | null => (typeof v === 'string' && v ? v : null);
const numbers = (v: unknown): Record<string, number> =>
	isObj(v)
		? (Object.fromEntries(Object.entries(v).filter(([, x]) => typeof x === 'number')) as Record<
				string,
				number
			>)
		: {};

export function normalizeModel(raw: unknown): RegisteredModel {
	if (!isObj(raw) || (typeof raw.id !== 'string' && typeof raw.id !== 'number')) {
		throw new ApiError(0, 'bad_response', 'The registry sent a model without an id.');
	}
	const name =
		str(raw.name) ?? str(raw.repo_id) ?? str(raw.output_model) ?? str(raw.hf_path) ?? String(raw.id);
	const status = (str(raw.status) ?? 'registered') as ModelStatus;
	const version =
		typeof raw.version === 'number'
			? raw.version
			: typeof raw.version === 'string'
				? Number.parseInt(raw.version.replace(/^v/, ''), 10) || null
				: null;
	return {
		id: String(raw.id),
		name,
		version,
		job_type: (str(raw.job_type) as JobType | null) ?? null,
		base_model: str(raw.base_model),
		status,
		path: str(raw.hf_path) ?? str(raw.path) ?? str(raw.local_path) ?? str(raw.uri) ?? name,
		revision: str(raw.revision),
		store: str(raw.store),
		uri: str(raw.uri),
		job_id: str(raw.job_id),
		metrics: numbers(raw.metrics),
		baseline_metrics: numbers(raw.baseline_metrics),
		created_at: str(raw.created_at) ?? str(raw.registered_at),
		deployed_at: str(raw.deployed_at),
		endpoint: str(raw.endpoint) ?? str(raw.api_base) ?? str(raw.serve_url),
		served_name: str(raw.served_name) ?? str(raw.model_name) ?? str(raw.litellm_model_name)
	};
}

export interface ModelFilter {
	job_type?: JobType | null;
	status?: ModelStatus | null;
	cursor?: string | null;
	limit?: number;
}

export async function listModels(
	api: ApiClient,
	filter: ModelFilter = {},
	signal?: AbortSignal
): Promise<Page<RegisteredModel>> {
	const page = await api.raw<Page<unknown>>('/api/models', {
		query: { ...filter, limit: filter.limit ?? 100 },
		signal
	});
	return { ...page, data: page.data.map(normalizeModel) };
}

export async function getModel(api: ApiClient, id: string): Promise<RegisteredModel> {
	return normalizeModel(await api.data<unknown>(`/api/models/${encodeURIComponent(id)}`));
}

export async function deployModel(api: ApiClient, id: string): Promise<RegisteredModel> {
	return normalizeModel(
		await api.data<unknown>(`/api/models/${encodeURIComponent(id)}/deploy`, { method: 'POST' })
	);
}

export async function undeployModel(api: ApiClient, id: string): Promise<RegisteredModel> {
	return normalizeModel(
		await api.data<unknown>(`/api/models/${encodeURIComponent(id)}/undeploy`, { method: 'POST' })
	);
}

export function deleteModel(api: ApiClient, id: string): Promise<unknown> {
	return api.raw(`/api/models/${encodeURIComponent(id)}`, { method: 'DELETE' });
}

/** One served model from the LiteLLM `model_list` (JSON form). */
export interface LiteLLMEntry {
	model_name: string;
	model: string | null;
	api_base: string | null;
	model_id: string | null;
}

export async function litellmEntries(api: ApiClient): Promise<LiteLLMEntry[]> {
	const body = await api.raw<unknown>('/api/models/litellm-config', { query: { format: 'json' } });
	const data = isObj(body) && 'data' in body ? body.data : body;
	const list = isObj(data) && Array.isArray(data.model_list) ? data.model_list : [];
	return list.filter(isObj).map((e) => {
		const params = isObj(e.litellm_params) ? e.litellm_params : {};
		const info = isObj(e.model_info) ? e.model_info : {};
		return {
			model_name: str(e.model_name) ?? '',
			model: str(params.model),
			api_base: str(params.api_base),
			model_id: str(info.id) ?? str(info.model_id) ?? str(info.registry_id)
		};
	});
}
