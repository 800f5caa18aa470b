import { describe, expect, it } from 'vitest';
import { scoreBars, similarityWords, snippetsFor } from './playground';
import { keyNameProblem, sortKeys } from './keys';
import { chunkText, cosine, streamChat } from './api/serving';
import { ApiClient, ApiError } from './api/client';

describe('playground', () => {
	it('picks the snippets of the model kind, with the input given', () => {
		const t = { model: 'a/b', baseUrl: 'http://h/v1' };
		const input = {
			pair: ['x', 'y'] as [string, string],
			texts: ['t'],
			messages: [{ role: 'user' as const, content: 'hi' }]
		};
		expect(snippetsFor('embedding', t, input).curl).toContain('/v1/embeddings');
		expect(snippetsFor('classifier', t, input).curl).toContain('"input":["t"]');
		expect(snippetsFor('llm_lora', t, input).curl).toContain('"content":"hi"');
	});

	it('draws every label best first, clamped to 0..1', () => {
		expect(scoreBars({ negative: 0.2, positive: 0.8, odd: 1.2, bad: Number.NaN })).toEqual([
			{ label: 'odd', score: 1 },
			{ label: 'positive', score: 0.8 },
			{ label: 'negative', score: 0.2 }
		]);
	});

	it('puts a cosine similarity in words', () => {
		expect(similarityWords(0.93)).toBe('very similar');
		expect(similarityWords(0.1)).toBe('unrelated');
	});
});

describe('cosine', () => {
	it('is 1 for parallel, 0 for orthogonal or zero vectors, -1 for opposite', () => {
		expect(cosine([1, 2], [2, 4])).toBeCloseTo(1);
		expect(cosine([1, 0], [0, 3])).toBe(0);
		expect(cosine([0, 0], [1, 1])).toBe(0);
		expect(cosine([1, 1], [-1, -1])).toBeCloseTo(-1);
		expect(() => cosine([1], [1, 2])).toThrow();
	});
});

describe('streamed chat', () => {
	it('reads the text and finish reason of chunks, and nothing of [DONE]', () => {
		expect(chunkText('{"choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}')).toEqual({
			text: 'Hel',
			finish: null
		});
		expect(chunkText('{"choices":[{"delta":{},"finish_reason":"stop"}]}')).toEqual({
			text: '',
			finish: 'stop'
		});
		expect(chunkText('[DONE]')).toBeNull();
		expect(chunkText('not json')).toBeNull();
	});

	const client = (fetcher: typeof fetch) => new ApiClient('', () => 'jwt', fetcher);

	it('hands each token over as it arrives, across chunk boundaries and CRLF lines', async () => {
		const sse =
			'data: {"choices":[{"delta":{"role":"assistant","content":""},"finish_reason":null}]}\r\n\r\n' +
			'data: {"choices":[{"delta":{"content":"Hel"},"finish_reason":null}]}\r\n\r\n' +
			'data: {"choices":[{"delta":{"content":"lo"},"finish_reason":"stop"}]}\r\n\r\ndata: [DONE]\r\n\r\n';
		const bytes = new TextEncoder().encode(sse);
		let sent: RequestInit | undefined;
		const fetcher = (async (_url: string, init?: RequestInit) => {
			sent = init;
			const body = new ReadableStream<Uint8Array>({
				start(c) {
					for (let i = 0; i < bytes.length; i += 7) c.enqueue(bytes.slice(i, i + 7));
					c.close();
				}
			});
			return new Response(body, { status: 200, headers: { 'Content-Type': 'text/event-stream' } });
		}) as typeof fetch;
		const tokens: string[] = [];
		const out = await streamChat(
			client(fetcher),
			{ model: 'a/b', messages: [{ role: 'user', content: 'hi' }] },
			(t) => tokens.push(t),
			undefined,
			fetcher
		);
		expect(tokens).toEqual(['Hel', 'lo']);
		expect(out).toEqual({ text: 'Hello', finish: 'stop' });
		expect(JSON.parse(String(sent?.body))).toMatchObject({ stream: true, model: 'a/b' });
		expect((sent?.headers as Record<string, string>).Authorization).toBe('Bearer jwt');
	});

	it("turns OpenAI's error shape into an ApiError with the server's code", async () => {
		const fetcher = (async () =>
			new Response(
				JSON.stringify({
					error: { message: 'No such model', type: 'invalid_request_error', code: 'model_not_deployed' }
				}),
				{
					status: 404
				}
			)) as typeof fetch;
		const err = await streamChat(
			client(fetcher),
			{ model: 'a/b', messages: [] },
			() => {},
			undefined,
			fetcher
		).catch((e) => e);
		expect(err).toBeInstanceOf(ApiError);
		expect(err.code).toBe('model_not_deployed');
		expect(err.message).toBe('No such model');
	});
});

describe('API keys', () => {
	it('need a name of 1 to 100 characters', () => {
		expect(keyNameProblem('  ')).toMatch(/Name the key/);
		expect(keyNameProblem('x'.repeat(101))).toMatch(/100/);
		expect(keyNameProblem('ci')).toBeNull();
	});

	it('list active keys first, newest first', () => {
		const k = (id: string, active: boolean, created: string, revoked: string | null = null) => ({
			id,
			name: id,
			prefix: `ftdk_${id}_`,
			created_at: created,
			revoked_at: revoked,
			active
		});
		const sorted = sortKeys([
			k('old', true, '2024-01-01T00:00:00Z'),
			k('gone', false, '2024-03-01T00:00:00Z', '2024-04-01T00:00:00Z'),
			k('new', true, '2024-02-01T00:00:00Z')
		]);
		expect(sorted.map((x) => x.id)).toEqual(['new', 'old', 'gone']);
	});
});
