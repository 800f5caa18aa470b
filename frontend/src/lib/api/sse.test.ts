import { describe, expect, it, vi } from 'vitest';
import { openStream, readEvents, type StreamEvent, type StreamState } from './sse';

function body(chunks: string[]): ReadableStream<Uint8Array> {
	const enc = new TextEncoder();
	return new ReadableStream({
		start(controller) {
			for (const c of chunks) controller.enqueue(enc.encode(c));
			controller.close();
		}
	});
}

const sse = (chunks: string[], status = 200) =>
	new Response(body(chunks), { status, headers: { 'Content-Type': 'text/event-stream; charset=utf-8' } });

async function until(check: () => boolean, timeout = 2000) {
	const start = Date.now();
	while (!check()) {
		if (Date.now() - start > timeout) throw new Error('timed out');
		await new Promise((r) => setTimeout(r, 5));
	}
}

describe('readEvents', () => {
	it('parses events split anywhere across chunks, with ids, comments and CRLF', async () => {
		const got: StreamEvent[] = [];
		const text =
			': ping\r\n\r\nevent: snapshot\r\nid: 7\r\ndata: [{"id":"a"}]\r\n\r\nevent: progress\nid: 8\ndata: {"k":1,\ndata: "ü":2}\n\n';
		// Split into 3-byte pieces, including inside the multi-byte character.
		const bytes = new TextEncoder().encode(text);
		const pieces: Uint8Array[] = [];
		for (let i = 0; i < bytes.length; i += 3) pieces.push(bytes.slice(i, i + 3));
		const stream = new ReadableStream<Uint8Array>({
			start(c) {
				for (const p of pieces) c.enqueue(p);
				c.close();
			}
		});
		await readEvents(stream, (e) => got.push(e));
		expect(got).toEqual([
			{ event: 'snapshot', id: '7', data: '[{"id":"a"}]' },
			{ event: 'progress', id: '8', data: '{"k":1,\n"ü":2}' }
		]);
	});

	it('names an event without a type "message"', async () => {
		const got: StreamEvent[] = [];
		await readEvents(body(['data: x\n\n']), (e) => got.push(e));
		expect(got[0]).toEqual({ event: 'message', id: null, data: 'x' });
	});
});

describe('openStream', () => {
	it('sends the token as a header, never in the URL, and resumes with Last-Event-ID', async () => {
		const calls: { url: string; headers: Record<string, string> }[] = [];
		const responses = [
			sse(['id: 5\nevent: status\ndata: {}\n\n']),
			sse(['id: 6\nevent: progress\ndata: {}\n\n'])
		];
		const fetcher = vi.fn(async (url: RequestInfo | URL, init?: RequestInit) => {
			calls.push({ url: String(url), headers: init?.headers as Record<string, string> });
			return responses.shift() ?? new Promise<Response>(() => {});
		});
		const events: StreamEvent[] = [];
		const handle = openStream({
			url: '/api/finetune/jobs/stream',
			headers: () => ({ Authorization: 'Bearer secret' }),
			onEvent: (e) => events.push(e),
			fetcher,
			backoffMs: [1]
		});
		await until(() => events.length === 2 && calls.length === 3);
		handle.close();
		expect(calls.every((c) => !c.url.includes('secret') && !c.url.includes('token'))).toBe(true);
		expect(calls[0]!.headers.Authorization).toBe('Bearer secret');
		expect(calls[0]!.headers['Last-Event-ID']).toBeUndefined();
		expect(calls[1]!.headers['Last-Event-ID']).toBe('5');
		expect(calls[2]!.headers['Last-Event-ID']).toBe('6');
		expect(handle.lastEventId).toBe('6');
	});

	it('starts from a given history row', async () => {
		const fetcher = vi.fn(async (_u: RequestInfo | URL, _i?: RequestInit) => new Promise<Response>(() => {}));
		const handle = openStream({
			url: '/s',
			headers: () => ({}),
			onEvent: () => {},
			fetcher,
			lastEventId: '41'
		});
		await until(() => fetcher.mock.calls.length === 1);
		handle.close();
		expect((fetcher.mock.calls[0]![1]?.headers as Record<string, string>)['Last-Event-ID']).toBe('41');
	});

	it('asks for polling after repeated failures and keeps trying', async () => {
		const states: StreamState[] = [];
		let n = 0;
		const fetcher = vi.fn(async () => {
			n++;
			if (n <= 3) throw new TypeError('network down');
			return sse(['id: 1\ndata: {}\n\n']);
		});
		const events: StreamEvent[] = [];
		const handle = openStream({
			url: '/s',
			headers: () => ({}),
			onEvent: (e) => events.push(e),
			onState: (s) => states.push(s),
			fetcher,
			backoffMs: [1],
			failuresBeforePolling: 3
		});
		await until(() => events.length === 1);
		handle.close();
		expect(states).toContain('retrying');
		expect(states).toContain('polling');
		expect(states.indexOf('open')).toBeGreaterThan(states.indexOf('polling'));
	});

	it('treats a buffered or non-SSE answer as a failure', async () => {
		const states: StreamState[] = [];
		const fetcher = vi.fn(
			async () => new Response('<html>', { status: 200, headers: { 'Content-Type': 'text/html' } })
		);
		const handle = openStream({
			url: '/s',
			headers: () => ({}),
			onEvent: () => {},
			onState: (s) => states.push(s),
			fetcher,
			backoffMs: [1],
			failuresBeforePolling: 2
		});
		await until(() => states.includes('polling'));
		handle.close();
	});

	it('stops for good on 401 and reports it', async () => {
		const onFatal = vi.fn();
		const fetcher = vi.fn(
			async () =>
				new Response(
					JSON.stringify({ error: { code: 'unauthorized', message: 'Token expired.', details: null } }),
					{ status: 401 }
				)
		);
		const states: StreamState[] = [];
		openStream({
			url: '/s',
			headers: () => ({}),
			onEvent: () => {},
			onState: (s) => states.push(s),
			onFatal,
			fetcher,
			backoffMs: [1]
		});
		await until(() => states.includes('closed'));
		expect(onFatal).toHaveBeenCalledWith(expect.objectContaining({ status: 401, message: 'Token expired.' }));
		expect(fetcher).toHaveBeenCalledOnce();
	});
});
