// data-service: upload with validation, datasets, preview (issue 6).
//
// The answers' shapes are data-service's OpenAPI document (docs/openapi/data-service.json, generated
// into ./generated/data-service.ts; `npm run check:api` keeps them current). Its validation report
// and statistics are free-form objects there, so they are read tolerantly (normalizeReport,
// normalizeStats) into the shapes below.
import { ApiError, errorFrom, type ApiClient } from './client';
import type { components } from './generated/data-service';
import type { JobType, Page } from './types';

type DataService = components['schemas'];

/** A stored dataset, as data-service answers it. */
export type DatasetResponse = DataService['DatasetResponse'];
export type DatasetPage = DataService['Page_DatasetResponse_'];
export type PreviewResponse = DataService['PreviewResponse'];

export type DatasetFormat = 'csv' | 'jsonl';

/** One problem in a file, at a line (1-based, as an editor numbers them) and column or key. */
export interface DatasetIssue {
	line: number | null;
	column: string | null;
	code: string | null;
	message: string;
}

export interface ValidationReport {
	valid: boolean;
	errors: DatasetIssue[];
	warnings: DatasetIssue[];
	/** More errors were found than the server lists. */
	truncated: boolean;
	/** The server's readable sentence. */
	summary: string | null;
}

export interface TextLength {
	min?: number;
	max?: number;
	mean?: number;
}

export interface DatasetStats {
	rows: number | null;
	labels: Record<string, number> | null;
	/** Text length in characters, per text column (a flat summary is filed under `text`). */
	textLength: Record<string, TextLength> | null;
	estimatedTokens: number | null;
	raw: Record<string, unknown>;
}

/**
 * A dataset as the UI shows it: data-service's answer with its report and statistics read, the
 * format and job types narrowed to the ones the UI knows, and the preview rows when fetched.
 */
export type Dataset = Omit<DatasetResponse, 'format' | 'job_type' | 'job_types' | 'stats' | 'validation'> & {
	format: DatasetFormat | null;
	job_type: JobType | null;
	job_types: JobType[];
	stats: DatasetStats;
	validation: ValidationReport;
	preview: Record<string, unknown>[];
};

type Raw = Record<string, unknown>;

const isObj = (v: unknown): v is Raw => typeof v === 'object' && v !== null && !Array.isArray(v);
const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);

export function normalizeIssue(raw: unknown): DatasetIssue | null {
	if (typeof raw === 'string') return { line: null, column: null, code: null, message: raw };
	if (!isObj(raw)) return null;
	const line = num(raw.line) ?? num(raw.line_number) ?? num(raw.lineno) ?? num(raw.row);
	const column =
		str(raw.column) ??
		str(raw.key) ??
		str(raw.field) ??
		(num(raw.column) !== null ? String(raw.column) : null);
	const message = str(raw.message) ?? str(raw.msg) ?? str(raw.detail) ?? '';
	if (!message) return null;
	return { line, column, code: str(raw.code), message };
}

function issues(v: unknown): DatasetIssue[] {
	return Array.isArray(v) ? v.map(normalizeIssue).filter((i): i is DatasetIssue => i !== null) : [];
}

/** Reads a validation report from a dataset (`validation`/`report`) or a 4xx error's details. */
export function normalizeReport(raw: unknown, fallbackSummary: string | null = null): ValidationReport {
	const r = isObj(raw) ? (isObj(raw.validation) ? raw.validation : isObj(raw.report) ? raw.report : raw) : {};
	const errors = issues(r.errors ?? (Array.isArray(raw) ? raw : undefined));
	const warnings = issues(r.warnings);
	const valid = typeof r.valid === 'boolean' ? r.valid && errors.length === 0 : errors.length === 0;
	const truncated =
		r.truncated === true ||
		r.errors_truncated === true ||
		(num(r.error_count) !== null && (num(r.error_count) as number) > errors.length) ||
		(num(r.total_errors) !== null && (num(r.total_errors) as number) > errors.length);
	return { valid, errors, warnings, truncated, summary: str(r.summary) ?? str(r.message) ?? fallbackSummary };
}

export function normalizeStats(raw: unknown, rows: number | null): DatasetStats {
	const s = isObj(raw) ? raw : {};
	const labels = isObj(s.label_distribution)
		? s.label_distribution
		: isObj(s.label_counts)
			? s.label_counts
			: isObj(s.labels)
				? s.labels
				: null;
	const tlRaw = isObj(s.text_length) ? s.text_length : isObj(s.text_lengths) ? s.text_lengths : null;
	const lengthOf = (v: Raw): TextLength =>
		Object.fromEntries(
			Object.entries(v).filter(([k, x]) => ['min', 'max', 'mean'].includes(k) && typeof x === 'number')
		) as TextLength;
	let textLength: Record<string, TextLength> | null = null;
	if (tlRaw) {
		// data-service answers one summary per column; a flat {min, max, mean} is one column.
		const perColumn = Object.entries(tlRaw).filter((entry): entry is [string, Raw] => isObj(entry[1]));
		textLength = perColumn.length
			? Object.fromEntries(perColumn.map(([k, v]) => [k, lengthOf(v)]))
			: { text: lengthOf(tlRaw) };
	}
	return {
		rows: num(s.rows) ?? rows,
		labels: labels
			? (Object.fromEntries(Object.entries(labels).filter(([, v]) => typeof v === 'number')) as Record<
					string,
					number
				>)
			: null,
		textLength,
		estimatedTokens: num(s.estimated_tokens) ?? num(s.tokens),
		raw: s
	};
}

export function normalizePreview(raw: unknown): Record<string, unknown>[] {
	const rows = isObj(raw) ? (raw.rows ?? raw.preview ?? raw.items) : raw;
	if (!Array.isArray(rows)) return [];
	const columns = isObj(raw) && Array.isArray(raw.columns) ? (raw.columns as unknown[]).map(String) : null;
	return rows.map((row): Record<string, unknown> => {
		if (Array.isArray(row) && columns) return Object.fromEntries(columns.map((c, i) => [c, row[i]]));
		if (isObj(row) && isObj(row.data)) return row.data;
		return isObj(row) ? row : { value: row };
	});
}

/** Reads a DatasetResponse (an upload's answer, a list's item, GET /datasets/{id}). */
export function normalizeDataset(body: unknown): Dataset {
	if (!isObj(body) || typeof body.id !== 'string') {
		throw new ApiError(0, 'bad_response', 'The upload answer did not name a dataset.');
	}
	const raw = body as DatasetResponse;
	const { format, job_type, job_types, stats, validation, ...rest } = raw;
	// The document types these as plain strings; data-service sends the values named here.
	const jobType = (str(job_type) as JobType | null) ?? null;
	return {
		...rest,
		filename: raw.filename ?? 'dataset',
		format: (str(format) as DatasetFormat | null) ?? null,
		job_type: jobType,
		job_types: Array.isArray(job_types)
			? (job_types.filter((t) => typeof t === 'string') as JobType[])
			: jobType
				? [jobType]
				: [],
		columns: Array.isArray(raw.columns) ? raw.columns.map(String) : [],
		stats: normalizeStats(stats, num(raw.rows)),
		validation: normalizeReport(validation ?? {}),
		training_data_url: raw.training_data_url ?? `ftd://datasets/${raw.id}`,
		preview: []
	};
}

/** An upload refused because the file is not valid: the error and the report it carries. */
export class InvalidDatasetError extends ApiError {
	readonly report: ValidationReport;
	constructor(error: ApiError) {
		super(error.status, error.code, error.message, error.details);
		this.name = 'InvalidDatasetError';
		this.report = normalizeReport(error.details, error.message);
	}
}

export interface UploadOptions {
	jobType?: JobType | null;
	dryRun?: boolean;
	onProgress?: (loaded: number, total: number) => void;
	signal?: AbortSignal;
	/** For tests: an XMLHttpRequest-compatible constructor. */
	xhr?: () => XMLHttpRequest;
}

/**
 * POST /api/finetune/upload as multipart (`file`, optional `job_type`). XMLHttpRequest, not fetch:
 * only it reports upload progress. Resolves with the stored, validated dataset; rejects with an
 * InvalidDatasetError (the report, line-numbered) when the file is refused.
 */
export function uploadTrainingData(
	api: ApiClient,
	file: File,
	options: UploadOptions = {}
): Promise<Dataset> {
	return new Promise((resolve, reject) => {
		const xhr = options.xhr ? options.xhr() : new XMLHttpRequest();
		const params = new URLSearchParams();
		if (options.dryRun) params.set('dry_run', 'true');
		// Also as a query parameter: data-service reads form fields in order, while streaming.
		if (options.jobType) params.set('job_type', options.jobType);
		const query = params.size ? `?${params}` : '';
		xhr.open('POST', `${api.baseUrl}/api/finetune/upload${query}`);
		for (const [k, v] of Object.entries(api.authHeaders())) xhr.setRequestHeader(k, v);
		xhr.setRequestHeader('Accept', 'application/json');
		xhr.upload.onprogress = (e: ProgressEvent) => {
			if (e.lengthComputable) options.onProgress?.(e.loaded, e.total);
		};
		xhr.onload = () => {
			let body: unknown = null;
			try {
				body = xhr.responseText ? JSON.parse(xhr.responseText) : null;
			} catch {
				body = null;
			}
			if (xhr.status >= 200 && xhr.status < 300) {
				try {
					resolve(normalizeDataset(isObj(body) && 'data' in body ? body.data : body));
				} catch (e) {
					reject(e);
				}
				return;
			}
			const error = errorFrom(xhr.status, body, xhr.statusText);
			reject(xhr.status === 400 || xhr.status === 422 ? new InvalidDatasetError(error) : error);
		};
		xhr.onerror = () =>
			reject(
				new ApiError(0, 'network_error', 'The upload was interrupted. Check your connection and try again.')
			);
		xhr.onabort = () => reject(new DOMException('The upload was cancelled.', 'AbortError'));
		options.signal?.addEventListener('abort', () => xhr.abort(), { once: true });
		const form = new FormData();
		// job_type before the file: the server validates the file as it streams past.
		if (options.jobType) form.append('job_type', options.jobType);
		form.append('file', file, file.name);
		xhr.send(form);
	});
}

export async function listDatasets(api: ApiClient, cursor: string | null = null): Promise<Page<Dataset>> {
	const page = await api.raw<DatasetPage>('/api/finetune/datasets', { query: { cursor, limit: 50 } });
	return { ...page, data: page.data.map(normalizeDataset) };
}

export async function getDataset(api: ApiClient, id: string): Promise<Dataset> {
	return normalizeDataset(
		await api.data<DatasetResponse>(`/api/finetune/datasets/${encodeURIComponent(id)}`)
	);
}

export async function previewDataset(api: ApiClient, id: string): Promise<Record<string, unknown>[]> {
	return normalizePreview(
		await api.data<PreviewResponse>(`/api/finetune/datasets/${encodeURIComponent(id)}/preview`)
	);
}

export function deleteDataset(api: ApiClient, id: string): Promise<unknown> {
	return api.raw(`/api/finetune/datasets/${encodeURIComponent(id)}`, { method: 'DELETE' });
}
