// registry-service: trained models, deploy/undeploy, delete, LiteLLM config (issue 8,
// docs/registry.md). The answers' shapes are registry-service's OpenAPI document
// (docs/openapi/registry-service.json, generated into ./generated/registry-service.ts; `npm run
// check:api` keeps them current); the LiteLLM configuration's entries are free-form there and are
// read tolerantly (parseServingConfig).
import { ApiError, type ApiClient } from './client';
import type { components } from './generated/registry-service';
import type { JobType, Page } from './types';

type Registry = components['schemas'];

/** A registered model version, as registry-service answers it. */
export type ModelResponse = Registry['ModelResponse'];
export type ModelPage = Registry['Page_ModelResponse_'];
export type ModelStatus = Registry['ModelStatus'];
export type LiteLLMConfig = Registry['LiteLLMConfig'];

/** A registered model version as the UI shows it. */
export type RegisteredModel = Omit<ModelResponse, 'id'> & {
	/** The version's id (a string, whatever the body held). */
	id: string;
	/** Where it is stored: the load URI (hf://owner/name@rev, local://owner/name@rev, s3://...). */
	path: string;
	/** Where the served model answers (OpenAI-compatible base URL), when the body says. */
	endpoint: string | null;
	/** The name to send as `model` to the served endpoint, when the body says. */
	served_name: string | null;
};

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

/** Reads a ModelResponse; `endpoint` and `served_name` are read where a body carries them. */
export function normalizeModel(body: unknown): RegisteredModel {
	if (!isObj(body) || (typeof body.id !== 'string' && typeof body.id !== 'number')) {
		throw new ApiError(0, 'bad_response', 'The registry sent a model without an id.');
	}
	const raw = body as ModelResponse;
	const name = str(raw.name) ?? str(raw.repo_id) ?? String(raw.id);
	return {
		...raw,
		id: String(raw.id),
		name,
		status: raw.status ?? 'registered',
		path: str(raw.uri) ?? name,
		metrics: numbers(raw.metrics),
		baseline_metrics: numbers(raw.baseline_metrics),
		endpoint: str(body.endpoint) ?? str(body.api_base) ?? str(body.serve_url),
		served_name: str(body.served_name) ?? str(body.model_name) ?? str(body.litellm_model_name)
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
	const { job_type, ...rest } = filter;
	const page = await api.raw<ModelPage>('/api/models', {
		query: { ...rest, type: job_type, limit: filter.limit ?? 100 },
		signal
	});
	return { ...page, data: page.data.map(normalizeModel) };
}

export async function getModel(api: ApiClient, id: string): Promise<RegisteredModel> {
	return normalizeModel(await api.data<ModelResponse>(`/api/models/${encodeURIComponent(id)}`));
}

export async function deployModel(api: ApiClient, id: string): Promise<RegisteredModel> {
	return normalizeModel(
		await api.data<ModelResponse>(`/api/models/${encodeURIComponent(id)}/deploy`, { method: 'POST' })
	);
}

export async function undeployModel(api: ApiClient, id: string): Promise<RegisteredModel> {
	return normalizeModel(
		await api.data<ModelResponse>(`/api/models/${encodeURIComponent(id)}/undeploy`, {
			method: 'POST'
		})
	);
}

/** Removes a version from the registry (undeploy it first); the Hub repo too only when asked. */
export function deleteModel(api: ApiClient, id: string, deleteRepo = false): Promise<unknown> {
	return api.raw(`/api/models/${encodeURIComponent(id)}`, {
		method: 'DELETE',
		query: { delete_repo: deleteRepo ? 'true' : null }
	});
}

/** Where a deployed model is served, from the registry's LiteLLM configuration (JSON form). */
export interface ServedModel {
	model_name: string;
	model_id: string | null;
	/** OpenAI-compatible base URL, ending in /v1. */
	api_base: string | null;
	/** The environment variable holding the server's key (`os.environ/NAME`), if it has one. */
	api_key_env: string | null;
}

export interface ServingConfig {
	models: ServedModel[];
	/** ftd-serve's base URL for classifiers (LiteLLM has no classify API: a pass-through). */
	classify_base: string | null;
	classify_key_env: string | null;
}

const envRef = (v: unknown): string | null => {
	const m = typeof v === 'string' ? /os\.environ\/([A-Za-z_][A-Za-z0-9_]*)/.exec(v) : null;
	return m ? (m[1] ?? null) : null;
};

export function parseServingConfig(body: unknown): ServingConfig {
	const data = isObj(body) && 'data' in body ? body.data : body;
	const list = isObj(data) && Array.isArray(data.model_list) ? data.model_list : [];
	const models = list.filter(isObj).map((e): ServedModel => {
		const params = isObj(e.litellm_params) ? e.litellm_params : {};
		const info = isObj(e.model_info) ? e.model_info : {};
		return {
			model_name: str(e.model_name) ?? '',
			model_id: str(info.id) ?? str(info.model_id),
			api_base: str(params.api_base),
			api_key_env: envRef(params.api_key)
		};
	});
	const general = isObj(data) && isObj(data.general_settings) ? data.general_settings : {};
	const passes = Array.isArray(general.pass_through_endpoints) ? general.pass_through_endpoints : [];
	const classify = passes.filter(isObj).find((p) => /\/classify$/.test(str(p.target) ?? ''));
	const headers = classify && isObj(classify.headers) ? classify.headers : {};
	return {
		models,
		classify_base: classify ? (str(classify.target)?.replace(/\/classify$/, '') ?? null) : null,
		classify_key_env: envRef(headers.Authorization)
	};
}

export async function servingConfig(api: ApiClient): Promise<ServingConfig> {
	return parseServingConfig(
		await api.raw<Registry['Data_LiteLLMConfig_']>('/api/models/litellm-config', {
			query: { format: 'json' }
		})
	);
}
