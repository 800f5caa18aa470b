import { describe, expect, it } from 'vitest';
import { ApiClient } from './client';
import {
	InvalidDatasetError,
	normalizeDataset,
	normalizePreview,
	normalizeReport,
	uploadTrainingData
} from './datasets';

class FakeXhr {
	static last: FakeXhr;
	method = '';
	url = '';
	headers: Record<string, string> = {};
	sent: FormData | null = null;
	status = 0;
	statusText = '';
	responseText = '';
	upload: { onprogress: ((e: ProgressEvent) => void) | null } = { onprogress: null };
	onload: (() => void) | null = null;
	onerror: (() => void) | null = null;
	onabort: (() => void) | null = null;
	constructor() {
		FakeXhr.last = this;
	}
	open(method: string, url: string) {
		this.method = method;
		this.url = url;
	}
	setRequestHeader(k: string, v: string) {
		this.headers[k] = v;
	}
	send(body: FormData) {
		this.sent = body;
	}
	abort() {
		this.onabort?.();
	}
	respond(status: number, body: unknown) {
		this.status = status;
		this.responseText = JSON.stringify(body);
		this.onload?.();
	}
}

const api = new ApiClient('', () => 'tok');
const xhr = () => new FakeXhr() as unknown as XMLHttpRequest;
const file = () => new File(['text,label\na,b\n'], 'train.csv', { type: 'text/csv' });

describe('uploadTrainingData', () => {
	it('posts multipart with job_type and the token, reports progress, resolves the dataset', async () => {
		const progress: number[] = [];
		const done = uploadTrainingData(api, file(), {
			jobType: 'classifier',
			xhr,
			onProgress: (l, t) => progress.push(l / t)
		});
		const x = FakeXhr.last;
		expect(x.method).toBe('POST');
		expect(x.url).toBe('/api/finetune/upload?job_type=classifier');
		expect([...x.sent!.keys()]).toEqual(['job_type', 'file']);
		expect(x.headers.Authorization).toBe('Bearer tok');
		expect((x.sent!.get('file') as File).name).toBe('train.csv');
		expect(x.sent!.get('job_type')).toBe('classifier');
		x.upload.onprogress!({ lengthComputable: true, loaded: 5, total: 10 } as ProgressEvent);
		x.respond(201, {
			data: {
				id: 'd1',
				filename: 'train.csv',
				format: 'csv',
				job_type: 'classifier',
				rows: 2,
				columns: ['text', 'label'],
				stats: {
					rows: 2,
					label_distribution: { b: 1 },
					text_length: { text: { min: 1, max: 1, mean: 1.0, histogram: { '<=16': 2 } } },
					estimated_tokens: 0
				},
				validation: { valid: true, errors: [] },
				training_data_url: 'ftd://datasets/d1'
			}
		});
		const ds = await done;
		expect(progress).toEqual([0.5]);
		expect(ds).toMatchObject({
			id: 'd1',
			rows: 2,
			training_data_url: 'ftd://datasets/d1',
			job_types: ['classifier']
		});
		expect(ds.stats.labels).toEqual({ b: 1 });
		expect(ds.stats.textLength).toEqual({ text: { min: 1, max: 1, mean: 1 } });
		expect(ds.stats.estimatedTokens).toBe(0);
		expect(ds.validation.valid).toBe(true);
	});

	it('rejects a refused file with its line-numbered report', async () => {
		const done = uploadTrainingData(api, file(), { xhr });
		FakeXhr.last.respond(422, {
			error: {
				code: 'invalid_dataset',
				message: 'The file has 2 errors; the first is on line 3.',
				details: {
					errors: [
						{ line: 3, column: 'label', code: 'missing_value', message: 'label is empty' },
						{ line: 7, message: 'extra column' }
					],
					error_count: 12
				}
			}
		});
		const error = await done.catch((e: unknown) => e);
		expect(error).toBeInstanceOf(InvalidDatasetError);
		const report = (error as InvalidDatasetError).report;
		expect(report.valid).toBe(false);
		expect(report.truncated).toBe(true);
		expect(report.summary).toBe('The file has 2 errors; the first is on line 3.');
		expect(report.errors).toEqual([
			{ line: 3, column: 'label', code: 'missing_value', message: 'label is empty' },
			{ line: 7, column: null, code: null, message: 'extra column' }
		]);
	});

	it('says a too-large file is too large', async () => {
		const done = uploadTrainingData(api, file(), { xhr });
		FakeXhr.last.respond(413, {
			error: { code: 'payload_too_large', message: 'The file is larger than 1 GiB.', details: null }
		});
		await expect(done).rejects.toMatchObject({ status: 413, message: 'The file is larger than 1 GiB.' });
	});

	it('can be cancelled', async () => {
		const controller = new AbortController();
		const done = uploadTrainingData(api, file(), { xhr, signal: controller.signal });
		controller.abort();
		await expect(done).rejects.toMatchObject({ name: 'AbortError' });
	});

	it('asks for a dry run when told', () => {
		void uploadTrainingData(api, file(), { xhr, dryRun: true }).catch(() => {});
		expect(FakeXhr.last.url).toBe('/api/finetune/upload?dry_run=true');
	});
});

describe('normalizers', () => {
	it('read reports in the shapes a validator may answer', () => {
		expect(normalizeReport([{ line_number: 2, key: 'output', msg: 'missing' }]).errors).toEqual([
			{ line: 2, column: 'output', code: null, message: 'missing' }
		]);
		expect(normalizeReport({ report: { valid: true, warnings: ['3 duplicate rows'] } })).toMatchObject({
			valid: true,
			warnings: [{ message: '3 duplicate rows' }]
		});
		expect(normalizeReport({}).valid).toBe(true);
	});

	it('read previews as records', () => {
		expect(normalizePreview({ columns: ['a', 'b'], rows: [[1, 2]] })).toEqual([{ a: 1, b: 2 }]);
		expect(normalizePreview([{ text: 'x' }])).toEqual([{ text: 'x' }]);
		expect(normalizePreview({ rows: [{ line: 2, data: { text: 'y' } }] })).toEqual([{ text: 'y' }]);
	});

	it('fill a dataset reference when the server gives none', () => {
		expect(normalizeDataset({ id: 'x' }).training_data_url).toBe('ftd://datasets/x');
		expect(() => normalizeDataset({})).toThrow();
	});
});
