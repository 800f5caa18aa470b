// model-server: the OpenAI-style API of deployed models (/v1/embeddings, /v1/classify,
// /v1/chat/completions with streaming, /v1/models) and the user's API keys (/api/keys). Request
// bodies are model-server's OpenAPI document (docs/openapi/model-server.json, generated into
// ./generated/model-server.ts); its routes answer free-form objects there, so the answers are typed
// here after its routes (OpenAI's shapes) and read tolerantly.
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { ApiError, errorFrom, type ApiClient } from './client';
import type { components } from './generated/model-server';

type Schemas = components['schemas'];
export type EmbeddingRequest = Schemas['EmbeddingRequest'];
export type ClassifyRequest = Schemas['ClassifyRequest'];
export type ChatRequest = Schemas['ChatRequest'];
export type ChatMessage = Schemas['ChatMessage'];
export type KeyRequest = Schemas['KeyRequest'];
/** A chat request as the UI sends it (the server defaults what is left out). */
export type ChatBody = Pick<ChatRequest, 'model' | 'messages'> &
	Partial<Pick<ChatRequest, 'max_tokens' | 'temperature' | 'top_p' | 'seed'>>;

/** An API key as listed: never the key itself, only its id and the prefix it starts with. */
export interface ApiKey {
	id: string;
	name: string;
	prefix: string;
	created_at: string;
	revoked_at: string | null;
	active: boolean;
}

/** The creation's answer: `key` (ftdk_<id>_<secret>) is shown this once. */
export interface CreatedApiKey extends ApiKey {
	key: string;
}

export interface ServedModel {
	id: string;
	ftd_type: 'embedding' | 'classifier' | 'lora' | string;
	ftd_model_id: string;
	ftd_revision: string | null;
	ftd_loaded: boolean;
}

export interface Classification {
	index: number;
	label: string;
	score: number;
	scores: Record<string, number>;
}

type Raw = Record<string, unknown>;
const isObj = (v: unknown): v is Raw => typeof v === 'object' && v !== null && !Array.isArray(v);

export function listKeys(api: ApiClient, signal?: AbortSignal): Promise<ApiKey[]> {
	return api.data<ApiKey[]>('/api/keys', { signal });
}

export function createKey(api: ApiClient, body: KeyRequest): Promise<CreatedApiKey> {
	return api.data<CreatedApiKey>('/api/keys', { method: 'POST', body });
}

export async function revokeKey(api: ApiClient, id: string): Promise<void> {
	await api.raw(`/api/keys/${encodeURIComponent(id)}`, { method: 'DELETE' });
}

/** The caller's deployed models as the server holds them (loaded, or still loading). */
export async function servedModels(api: ApiClient, signal?: AbortSignal): Promise<ServedModel[]> {
	const body = await api.raw<{ data?: unknown }>('/v1/models', { signal });
	return Array.isArray(body?.data) ? (body.data.filter(isObj) as unknown as ServedModel[]) : [];
}

export async function embed(api: ApiClient, model: string, input: string[]): Promise<number[][]> {
	const body = await api.raw<{ data?: unknown }>('/v1/embeddings', {
		method: 'POST',
		body: { model, input, encoding_format: 'float' } satisfies EmbeddingRequest
	});
	const rows = Array.isArray(body?.data) ? body.data.filter(isObj) : [];
	const vectors = rows
		.sort((a, b) => Number(a.index) - Number(b.index))
		.map((r) => (Array.isArray(r.embedding) ? (r.embedding as number[]) : []));
	if (vectors.length !== input.length || vectors.some((v) => v.length === 0)) {
		throw new ApiError(0, 'bad_response', 'The server sent embeddings the UI does not understand.');
	}
	return vectors;
}

export async function classify(api: ApiClient, model: string, input: string[]): Promise<Classification[]> {
	const body = await api.raw<{ data?: unknown }>('/v1/classify', {
		method: 'POST',
		body: { model, input } satisfies ClassifyRequest
	});
	const rows = Array.isArray(body?.data) ? body.data.filter(isObj) : [];
	return rows.map((r, i) => ({
		index: typeof r.index === 'number' ? r.index : i,
		label: String(r.label ?? ''),
		score: typeof r.score === 'number' ? r.score : 0,
		scores: isObj(r.scores)
			? (Object.fromEntries(Object.entries(r.scores).filter(([, v]) => typeof v === 'number')) as Record<
					string,
					number
				>)
			: {}
	}));
}

/** Cosine similarity of two vectors (0 when either is all zeros). */
export function cosine(a: readonly number[], b: readonly number[]): number {
	if (a.length !== b.length) throw new Error('vectors of different lengths');
	let dot = 0;
	let na = 0;
	let nb = 0;
	for (let i = 0; i < a.length; i++) {
		const x = a[i] as number;
		const y = b[i] as number;
		dot += x * y;
		na += x * x;
		nb += y * y;
	}
	return na && nb ? dot / Math.sqrt(na * nb) : 0;
}

/** The text of one streamed chat chunk (`data:` of OpenAI's chat.completion.chunk), or null. */
export function chunkText(data: string): { text: string; finish: string | null } | null {
	if (data === '[DONE]') return null;
	let parsed: unknown;
	try {
		parsed = JSON.parse(data);
	} catch {
		return null;
	}
	const choice = isObj(parsed) && Array.isArray(parsed.choices) ? parsed.choices[0] : null;
	if (!isObj(choice)) return null;
	const delta = isObj(choice.delta) ? choice.delta : {};
	return {
		text: typeof delta.content === 'string' ? delta.content : '',
		finish: typeof choice.finish_reason === 'string' ? choice.finish_reason : null
	};
}

/**
 * Streams a chat completion: `onToken` gets each piece as it arrives; resolves with the whole
 * reply and the finish reason once the server sends `data: [DONE]`.
 */
export async function streamChat(
	api: ApiClient,
	body: ChatBody,
	onToken: (text: string) => void,
	signal?: AbortSignal,
	fetcher: typeof fetch = (...args) => fetch(...args)
): Promise<{ text: string; finish: string | null }> {
	let response: Response;
	try {
		response = await fetcher(`${api.baseUrl}/v1/chat/completions`, {
			method: 'POST',
			headers: { 'Content-Type': 'application/json', Accept: 'text/event-stream', ...api.authHeaders() },
			body: JSON.stringify({ ...body, stream: true }),
			signal
		});
	} catch (cause) {
		if (cause instanceof DOMException && cause.name === 'AbortError') throw cause;
		throw new ApiError(0, 'network_error', 'The server could not be reached. Check your connection.');
	}
	if (!response.ok || !response.body) {
		const text = await response.text().catch(() => '');
		let parsed: unknown = null;
		try {
			parsed = text ? JSON.parse(text) : null;
		} catch {
			parsed = null;
		}
		throw errorFrom(response.status, openAiError(parsed), response.statusText);
	}
	let text = '';
	let finish: string | null = null;
	const parser = createParser({
		onEvent(message: EventSourceMessage) {
			const piece = chunkText(message.data);
			if (!piece) return;
			if (piece.text) {
				text += piece.text;
				onToken(piece.text);
			}
			finish = piece.finish ?? finish;
		}
	});
	const reader = response.body.getReader();
	const decoder = new TextDecoder();
	for (;;) {
		const { value, done } = await reader.read();
		if (done) break;
		parser.feed(decoder.decode(value, { stream: true }));
	}
	parser.feed(decoder.decode());
	return { text, finish };
}

/** OpenAI's error shape (`{"error": {"message", "type", "code"}}`) as the client's envelope. */
function openAiError(body: unknown): unknown {
	if (!isObj(body) || !isObj(body.error)) return body;
	const e = body.error;
	return { error: { code: e.code ?? e.type, message: e.message, details: e.param ?? null } };
}
