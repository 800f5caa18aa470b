// The one HTTP client: adds the bearer token, unwraps `{"data": ...}`, and turns the error
// envelope `{"error": {code, message, details}}` into an ApiError the UI can show field by field.

export interface FieldError {
	/** Dotted location of the field the server named (`output_model`, `hyperparameters.epochs`). */
	field: string | null;
	message: string;
}

export class ApiError extends Error {
	readonly status: number;
	readonly code: string;
	readonly details: unknown;

	constructor(status: number, code: string, message: string, details: unknown = null) {
		super(message);
		this.name = 'ApiError';
		this.status = status;
		this.code = code;
		this.details = details;
	}

	/** Errors attached to fields, from the details of a 422 (pydantic's list or job-api's field). */
	fieldErrors(): FieldError[] {
		return fieldErrorsOf(this.details, this.message);
	}
}

function fieldErrorsOf(details: unknown, message: string): FieldError[] {
	if (Array.isArray(details)) {
		return details.flatMap((d): FieldError[] => {
			if (typeof d !== 'object' || d === null) return [];
			const item = d as Record<string, unknown>;
			const loc = Array.isArray(item.loc)
				? item.loc.filter((p) => p !== 'body').join('.')
				: typeof item.field === 'string'
					? item.field
					: null;
			const text = typeof item.message === 'string' ? item.message : String(item.msg ?? '');
			return text ? [{ field: loc || null, message: text }] : [];
		});
	}
	if (typeof details === 'object' && details !== null) {
		const d = details as Record<string, unknown>;
		if (Array.isArray(d.errors)) return fieldErrorsOf(d.errors, message);
		if (typeof d.field === 'string') return [{ field: d.field, message }];
	}
	return [];
}

/** Builds an ApiError from any response body (the envelope, FastAPI's default, or none). */
export function errorFrom(status: number, body: unknown, statusText = ''): ApiError {
	if (typeof body === 'object' && body !== null && 'error' in body) {
		const e = (body as { error: Record<string, unknown> }).error;
		if (typeof e === 'object' && e !== null) {
			return new ApiError(
				status,
				typeof e.code === 'string' ? e.code : `http_${status}`,
				typeof e.message === 'string' ? e.message : statusText || `HTTP ${status}`,
				e.details ?? null
			);
		}
	}
	if (typeof body === 'object' && body !== null && 'detail' in body) {
		const detail = (body as { detail: unknown }).detail;
		const message = typeof detail === 'string' ? detail : 'The request was not valid.';
		return new ApiError(status, `http_${status}`, message, detail);
	}
	const fallback: Record<number, string> = {
		401: 'Your session has expired or the token is not valid. Sign in again.',
		404: 'Not found.',
		413: 'The file is larger than the server accepts.',
		502: 'The service behind the gateway is not reachable.',
		503: 'The service is not available right now. Try again in a moment.'
	};
	return new ApiError(
		status,
		`http_${status}`,
		fallback[status] ?? (statusText || `The server answered HTTP ${status}.`)
	);
}

export type TokenSource = () => string | null;
export type UnauthorizedHandler = (error: ApiError) => void;

export interface RequestOptions {
	method?: string;
	query?: Record<string, string | number | boolean | null | undefined | string[]>;
	body?: unknown;
	signal?: AbortSignal;
}

export function buildUrl(base: string, path: string, query?: RequestOptions['query']): string {
	const params = new URLSearchParams();
	for (const [key, value] of Object.entries(query ?? {})) {
		if (value === null || value === undefined || value === '') continue;
		if (Array.isArray(value)) for (const v of value) params.append(key, v);
		else params.append(key, String(value));
	}
	const qs = params.toString();
	return `${base}${path}${qs ? `?${qs}` : ''}`;
}

export class ApiClient {
	constructor(
		readonly baseUrl: string,
		private readonly token: TokenSource,
		private readonly fetcher: typeof fetch = (...args) => fetch(...args),
		private readonly onUnauthorized: UnauthorizedHandler = () => {}
	) {}

	authHeaders(): Record<string, string> {
		const token = this.token();
		return token ? { Authorization: `Bearer ${token}` } : {};
	}

	/** Sends a request and returns the response body as is (for list pages and non-envelopes). */
	async raw<T>(path: string, options: RequestOptions = {}): Promise<T> {
		const headers: Record<string, string> = { Accept: 'application/json', ...this.authHeaders() };
		let body: BodyInit | undefined;
		if (options.body !== undefined) {
			headers['Content-Type'] = 'application/json';
			body = JSON.stringify(options.body);
		}
		let response: Response;
		try {
			response = await this.fetcher(buildUrl(this.baseUrl, path, options.query), {
				method: options.method ?? 'GET',
				headers,
				body,
				signal: options.signal
			});
		} catch (cause) {
			if (cause instanceof DOMException && cause.name === 'AbortError') throw cause;
			throw new ApiError(0, 'network_error', 'The server could not be reached. Check your connection.');
		}
		const text = await response.text();
		let parsed: unknown = null;
		if (text) {
			try {
				parsed = JSON.parse(text);
			} catch {
				parsed = null;
			}
		}
		if (!response.ok) {
			const error = errorFrom(response.status, parsed, response.statusText);
			if (response.status === 401) this.onUnauthorized(error);
			throw error;
		}
		return parsed as T;
	}

	/** Sends a request and unwraps `{"data": ...}`. */
	async data<T>(path: string, options: RequestOptions = {}): Promise<T> {
		const body = await this.raw<{ data: T }>(path, options);
		if (typeof body !== 'object' || body === null || !('data' in body)) {
			throw new ApiError(0, 'bad_response', 'The server sent an answer the UI does not understand.');
		}
		return body.data;
	}
}
